"""The state: the store (one JSON file written atomically under an inter-process lock), its typed
reads, the archive of paid invoices, the importer of billing data, and the caches kept beside it."""
