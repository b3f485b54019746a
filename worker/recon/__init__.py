"""Reconstruction engine: six views + six depth renders -> a coloured mesh."""
