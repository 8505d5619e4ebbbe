"""The owner's HTTP endpoint: serves public content by CID (IPFS trustless gateway)."""
