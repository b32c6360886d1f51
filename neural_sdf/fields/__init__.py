"""Task adapters: each turns data into batches and weighted losses on the shared SIREN core."""
