"""pallet-dev: one command to a local OCI registry for the Pallet system."""

__version__ = "0.1.0"
