"""Views of a Board (bench/board.py): markdown pages, JSON and CSV, PNG figures. Pure functions."""
