"""In-memory simulators of the vendor APIs (SPEC §9), served on loopback by ``SimServer``."""
