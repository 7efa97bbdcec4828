"""Reading labelled text from wherever it lives, by job: data files (tables.py), IMDB and aclImdb (imdb.py),
Hugging Face datasets (hf.py), what a path names and the loaders that answer from it (sources.py), splits and
label maps (split.py). Re-exported here: `from textclf.data import load_splits` keeps working."""

from .hf import datasets_form
from .imdb import read_aclimdb
from .sources import SourceOptions, is_data_file, load_splits, load_unlabelled, source_kind
from .split import SPLITS, Split, apply_label_map
from .tables import (
    DETECT,
    SUFFIXES,
    FileFormat,
    check_text_file,
    frame_to_split,
    iter_table,
    read_split,
    read_table,
    resolve_delimiter,
    text_of,
)

__all__ = ["DETECT", "SPLITS", "SUFFIXES", "FileFormat", "SourceOptions", "Split", "apply_label_map",
           "check_text_file", "datasets_form", "frame_to_split", "is_data_file", "iter_table", "load_splits",
           "load_unlabelled", "read_aclimdb", "read_split", "read_table", "resolve_delimiter", "source_kind", "text_of"]
