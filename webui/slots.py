"""Which gallery file goes to which of the six camera slots, and the captions that say so.

A browser's file dialog sorts files as it likes, so position alone is a poor
guide: a file already captioned with a slot keeps it, a file whose name
contains a slot name as a word (`view_3_left.png`, `Left.PNG`) goes to that
slot, and the rest fill the free slots in upload order. The caption of every
thumbnail is its slot's name, so the user sees where each file went.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Iterable, Sequence

from worker.recon.rig import SLOT_NAMES

EXTRA_CAPTION = "extra: remove"

GalleryItem = tuple[str, str | None]


def slot_in_name(filename: str) -> int | None:
    """The slot named by a word of the file's name, e.g. `depth_1_right.png` -> 1."""
    words = re.split(r"[^a-z]+", PurePath(filename).stem.lower())
    return next((slot for slot, name in enumerate(SLOT_NAMES) if name in words), None)


def _slot_in_caption(caption: str | None) -> int | None:
    return SLOT_NAMES.index(caption) if caption in SLOT_NAMES else None


def gallery_items(value: Iterable[object] | None) -> list[GalleryItem]:
    """Gallery values arrive as (path, caption) pairs, or as bare paths from an API client."""
    items: list[GalleryItem] = []
    for entry in value or ():
        if isinstance(entry, (tuple, list)):
            items.append((str(entry[0]), entry[1] if len(entry) > 1 else None))
        else:
            items.append((str(entry), None))
    return items


def arrange(value: Iterable[object] | None) -> list[GalleryItem]:
    """Put the files in slot order with slot-name captions; files beyond six come last, marked extra."""
    items = gallery_items(value)
    slots: list[str | None] = [None] * len(SLOT_NAMES)
    unplaced: list[str] = []
    for path, caption in items:
        slot = _slot_in_caption(caption)
        if slot is None:
            slot = slot_in_name(path)
        if slot is not None and slots[slot] is None:
            slots[slot] = path
        else:
            unplaced.append(path)
    for slot, path in enumerate(slots):
        if path is None and unplaced:
            slots[slot] = unplaced.pop(0)
    placed = [(path, SLOT_NAMES[slot]) for slot, path in enumerate(slots) if path is not None]
    return placed + [(path, EXTRA_CAPTION) for path in unplaced]


def paths_in_slot_order(value: Sequence[object] | None) -> list[str]:
    return [path for path, _ in arrange(value)]


def missing_slots(value: Sequence[object] | None) -> list[str]:
    """The slots still without a file, once the gallery holds some but not all six."""
    taken = {caption for _, caption in arrange(value)}
    return [slot for slot in SLOT_NAMES if slot not in taken] if taken else []
