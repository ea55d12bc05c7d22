"""memory_profiler line tables found in `cells/<id>/lineprof/*.txt`: copied into the report folder and
handed to the HTML page as they are (memory_profiler's own text format)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from memharness import names
from memharness.core.atomic import write_bytes
from memharness.results.run import Run


@dataclass
class LineTable:
    cell: str
    name: str  # the file's stem: the target's dotted path
    text: str
    copy: Path  # where the report keeps it


def copy_line_tables(run: Run, out_dir: Path) -> list[LineTable]:
    dest_root = Path(out_dir) / names.REPORT_LINEPROF
    if dest_root.is_dir():
        shutil.rmtree(dest_root)
    found = []
    for cell in run.cells:
        for f in cell.lineprof_files():
            dest = dest_root / cell.id / f.name
            data = f.read_bytes()
            write_bytes(dest, data)  # atomic, like every report file: a full disk leaves no half copy
            found.append(LineTable(cell.id, f.stem, data.decode("utf-8", errors="replace"), dest))
    return found
