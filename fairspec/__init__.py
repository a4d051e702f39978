"""fairspec: FAIR experiments (Fault-Aware DIstillation via peer-Review) declared in one YAML spec."""

__version__ = "0.1.0"
