"""The EC2-API client side of provisioning, and the bundled local cloud."""
