//! Genesys Cloud Platform API v2 client.
