"""rakit.server: the process (uvicorn, its bounded HTTP protocol, the TLS gate, --join); above rakit.http."""
