"""Frontend: source text → AST (parser.py) → tile IR (sema.py)."""
