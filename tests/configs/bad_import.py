from .does_not_exist import train  # noqa: F401
