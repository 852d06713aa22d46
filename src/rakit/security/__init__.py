"""Security: node-to-node authentication, client tokens, TLS contexts.

``rakit.http.security.SecurityMiddleware`` is the one place requests are
checked; it asks ``internal.InternalAuth`` about node-to-node paths and
``tokens.ClientAuth`` about client paths.  Both are off unless configured.
"""
