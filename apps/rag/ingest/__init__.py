"""From bytes to chunks: parsing (parse.py) and structure-aware chunking (chunk.py). Plain
Python: no Django, no database, so both are tested and benchmarked on their own."""
