"""Regenerate the tables of ``scripts/README.md`` from the benchmark results in ``scripts/results/``.

Each table sits between two markers, ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->``; what is
between them is rewritten from the JSON files the benchmark scripts wrote (``_results.write_results``),
with a first line naming the command and the commit, date and machine it measured. Text outside
the markers is left alone, so the prose around a table is written by hand, the numbers are not.

    python scripts/make_tables.py            # rewrite scripts/README.md in place (atomically)
    python scripts/make_tables.py --check    # exit 1, naming each table that differs from its JSON
    python scripts/make_tables.py --readme OTHER.md --results DIR --check
"""

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional

SCRIPTS = Path(__file__).resolve().parent
README = SCRIPTS / "README.md"
RESULTS = SCRIPTS / "results"

MARKER = re.compile(r"<!-- table:(?P<name>[A-Za-z0-9_.-]+) -->\n(?P<body>.*?)<!-- /table:(?P=name) -->", re.S)
OPENING = re.compile(r"<!-- table:([A-Za-z0-9_.-]+) -->")


class TableError(Exception):
    """A table that cannot be made: its JSON is missing or unreadable, or its name is unknown."""


def _load(results: Path, name: str) -> dict[str, Any]:
    path = results / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise TableError(f"{path} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise TableError(f"{path}: {exc}") from None


def _stamp(data: dict[str, Any], command: str) -> str:
    m = data.get("machine", {})
    threads = m.get("torch_threads")
    where = f"{m.get('cpu', '?')}, {m.get('cpu_count', '?')} CPUs, {threads} torch thread{'s' if threads != 1 else ''}"
    if m.get("cuda"):
        where += f", {m['cuda']}"
    return f"_Measured by `{command}` at commit `{m.get('commit', '?')}`, {m.get('date', '?')} ({where})._"


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header))] + [_row(r) for r in rows]


def _e(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.2e}"


def _f(x: Optional[float], digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _pct(x: Optional[float], digits: int = 3) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f} %"


# --- one function per table: results folder in, markdown lines out -------------------------------


def table_distance(results: Path) -> list[str]:
    """``benchmark_distance.py``: the network alone against the corrected ``SDFModel.sdf``."""
    d = _load(results, "distance")
    rows = []
    for r in d["rows"]:
        n, c = r["network"], r["corrected"]
        rows.append([
            r["shape"],
            _e(n["p95_near"]), _e(c["p95_near"]),
            _e(n["p95_all"]), _e(c["p95_all"]),
            f"{_f(n['sign_ok'], 5)} ({n['wrong_sign_points']})", f"{_f(c['sign_ok'], 5)} ({c['wrong_sign_points']})",
            _f(n["grad_ok"], 3), _f(c["grad_ok"], 3), _f(c["grad_ok_smooth"], 3),
            f"{r['extra_s']:.1f} / {r['reconstruct_s']:.1f}",
        ])
    header = [
        "shape", "p95 error near, network", "corrected", "p95 error in the box, network", "corrected",
        "sign right (wrong points), network", "corrected", "grad norm within 0.05 of 1, network", "corrected",
        "corrected, where the truth is smooth", "far field s / reconstruct s",
    ]
    return [_stamp(d, "python " + d.get("command", "scripts/benchmark_distance.py")), ""] + _table(header, rows)


def table_cleanup(results: Path) -> list[str]:
    """``benchmark_cleanup.py``: each shape alone, clean and noisy, and the plate."""
    d = _load(results, "cleanup")
    rows = [
        [c["cloud"], _pct(c["noise"], 1), c["dropped"], _pct(c["normals_kept"]), _pct(c["flips_repaired"])]
        for c in d["clouds"]
    ]
    header = ["cloud", "noise (of the diagonal)", "points dropped", "given normals kept", "20 % flipped: agreement after repair"]
    return [_stamp(d, _cleanup_command(d)), ""] + _table(header, rows)


def table_cleanup_scene(results: Path) -> list[str]:
    """``benchmark_cleanup.py``: the table-top scene, with and without outliers, and the gargoyle scan."""
    d = _load(results, "cleanup")
    s, g = d["scene"], d.get("gargoyle")
    rows = [
        ["scene: points (objects and slab)", f"{s['points']:,}"],
        ["scene: points dropped", s["clean_dropped"]],
        ["scene: given normals changed", s["clean_normals_changed"]],
        ["scene + outliers: outliers added", f"{s['outliers']:,}"],
        ["scene + outliers: of them farther than 3 local spacings", f"{s['outliers_far']:,}"],
        ["scene + outliers: share found, all", _pct(s["found_all"], 1)],
        ["scene + outliers: share found, farther than 3 spacings", _pct(s["found_far"], 1)],
        ["scene + outliers: valid points dropped", s["valid_dropped"]],
        ["scene + outliers: outlier test s", _f(s["outlier_seconds"], 1)],
        ["scene + outliers: normal check s", _f(s["normals_seconds"], 1)],
    ]
    if g:
        rows += [
            ["gargoyle scan: points", f"{g['points']:,}"],
            ["gargoyle scan: points dropped", g["dropped"]],
            ["gargoyle scan: given normals changed", g["normals_changed"]],
            ["gargoyle scan: all normals flipped", "yes" if g["flipped_all"] else "no"],
        ]
    return [_stamp(d, _cleanup_command(d)), ""] + _table(["measure", "value"], rows)


def _cleanup_command(d: dict[str, Any]) -> str:
    s = d.get("settings", {})
    return f"python scripts/benchmark_cleanup.py --points {s.get('points', '?')} --ground {s.get('ground', '?')} --seed {s.get('seed', '?')}"


def _scans_command(d: dict[str, Any], name: str) -> str:
    s = d.get("settings", {})
    return (
        f"python scripts/benchmark_scans.py --shapes {' '.join(s.get('shapes', []))} "
        f"--conditions {' '.join(s.get('conditions', []))} --quiet --json scripts/results/{name}.json"
    )


def table_scans_given(results: Path) -> list[str]:
    """``benchmark_scans.py`` with given normals, before and after the given-normal repair."""
    before, after = _load(results, "scans_given_before"), _load(results, "scans_given_after")
    old = {(r["shape"], r["condition"]): r for r in before["rows"]}
    rows = []
    for r in after["rows"]:
        b = old.get((r["shape"], r["condition"]))
        ob = b["ours"] if b else {}
        oa, p = r["ours"], r["poisson"]
        rows.append([
            r["shape"], r["condition"],
            b["normals"] if b else "-", r["normals"],
            _pct(b["points_kept"]) if b else "-", _pct(r["points_kept"]),
            _e(ob.get("chamfer_rel")), _e(oa["chamfer_rel"]), _e(p["chamfer_rel"]),
            _f(ob.get("nc"), 4), _f(oa["nc"], 4), _f(p["nc"], 4),
            _f(ob.get("f05"), 4), _f(oa["f05"], 4), _f(p["f05"], 4),
            f"{ob.get('pieces', '-')} / {oa['pieces']} / {p['pieces']}",
            f"{_f(ob.get('seconds'), 0)} / {_f(oa['seconds'], 0)} / {_f(p['seconds'], 0)}",
        ])
    header = [
        "shape", "condition", "normals before", "after", "points kept before", "after",
        "Chamfer/diag before", "after", "Poisson", "NC before", "after", "Poisson",
        "F@0.5% before", "after", "Poisson", "pieces before / after / Poisson", "s before / after / Poisson",
    ]
    return [
        "Before: " + _stamp(before, _scans_command(before, "scans_given_before")),
        "",
        "After: " + _stamp(after, _scans_command(after, "scans_given_after")),
        "",
    ] + _table(header, rows)


def table_image_sweep(results: Path, name: str) -> list[str]:
    """``benchmark_image.py --sweep``: variants of the image preset at one wall-time budget."""
    d = _load(results, name)
    rows = []
    for r in d["rows"]:
        settings = ", ".join(f"{k}={v}" for k, v in r.get("settings", {}).items()) or "(preset)"
        rows.append([r["variant"], settings, _f(r["seconds_per_step"], 4), r["steps"], _f(r["seconds"], 1), _f(r["psnr"], 2)])
    stamp = _stamp(d, "python " + d.get("command", "scripts/benchmark_image.py --sweep"))
    what = f"Image `{d.get('image')}` at {d.get('size')} x {d.get('size')}, budget {d.get('budget_seconds')} s per variant, base {d.get('base')}."
    return [stamp, "", what, ""] + _table(["variant", "settings", "s / step", "steps", "s", "PSNR (dB)"], rows)


def table_holes(results: Path) -> list[str]:
    """``benchmark_holes.py``: holed shells, without the sign term (before), with it (after), Poisson."""
    d = _load(results, "holes")
    rows = []
    for r in d["rows"]:
        cells = [r["shape"], r["condition"], _f(r.get("input_area_ratio"), 3)]
        for key in ("before", "after", "poisson"):
            m = r.get(key)
            cells += ["-"] * 4 if m is None else [_f(m["area_ratio"], 3), _pct(m["supported"], 2), m["pieces"], _f(m["nc"], 4)]
        rows.append(cells)
    header = ["shape", "input", "sampled area / closed area"]
    for key in ("before", "after", "Poisson d9"):
        header += [f"{key}: area / closed area", "area within 1 % of a point", "pieces", "NC"]
    st = d.get("settings", {})
    command = "python scripts/benchmark_holes.py" + "".join(
        f" --{key.replace('_', '-')} {' '.join(map(str, st[key])) if isinstance(st[key], list) else st[key]}"
        for key in ("points", "holes", "hole_fraction", "conditions") if key in st
    )
    return [_stamp(d, command), ""] + _table(header, rows)


def table_morph(results: Path) -> list[str]:
    """``benchmark_distance.py --morph``: pieces of blend frames, raw networks against distances."""
    d = _load(results, "distance")
    rows = []
    for m in d.get("morphs", []):
        for label in ("network", "corrected"):
            rows.append([f"{m['a']} -> {m['b']}", label, " ".join(str(p) for p in m[label]["pieces"]),
                         " ".join(f"{x:.1e}" for x in m[label]["smallest_share"])])
    header = ["blend", "fields mixed", "pieces per frame (t = 0, 0.25, 0.5, 0.75, 1)", "smallest piece's share of the area"]
    return [_stamp(d, "python " + d.get("command", "scripts/benchmark_distance.py")), ""] + _table(header, rows)


def table_real_scenes(results: Path) -> list[str]:
    """``benchmark_real_scenes.py``: one plain ``reconstruct`` per real scan, and Poisson depth 9."""
    d = _load(results, "real_scenes")
    rows = []
    for r in d["rows"]:
        p = r.get("poisson9", {})
        rows.append([
            r["file"], r.get("exit"), f"{r['seconds']:.0f}", r.get("points"), r.get("tiles"), r.get("faces"), r.get("pieces"),
            _pct(r.get("points_near"), 2), _pct(r.get("mesh_near"), 2),
            _pct(p.get("trimmed", {}).get("mesh_near"), 2) if p else "-", _pct(p.get("untrimmed", {}).get("mesh_near"), 2) if p else "-",
        ])
    header = [
        "scan", "exit", "seconds", "points", "tiles", "faces", "pieces", "points near the mesh", "mesh near a point",
        "Poisson d9 trimmed: mesh near a point", "untrimmed",
    ]
    note = "_Near: within 2 cm (2 map units for the LiDAR tile) for points, 5 cm (5 units) for the mesh._"
    return [_stamp(d, "python scripts/benchmark_real_scenes.py"), "", note, ""] + _table(header, rows)


def table_decimation(results: Path) -> list[str]:
    """``benchmark_decimation.py``: default meshes against ``--target-faces`` at a tenth of the faces."""
    d = _load(results, "decimation")
    rows = []
    for r in d["rows"]:
        a, b = r["full"], r["simplified"]
        rows.append([
            r["shape"], a["faces"], b["faces"], _e(a["chamfer"]), _e(b["chamfer"]), _f(a["nc"], 4), _f(b["nc"], 4),
            _f(a["f05"], 4), _f(b["f05"], 4), f"{'closed' if b['closed'] else 'open'}, {b['pieces']}", f"{r['seconds']:.1f}",
        ])
    header = ["shape", "faces", "simplified", "Chamfer", "simplified", "NC", "simplified", "F@0.5%", "simplified",
              "simplified: closed, pieces", "seconds"]
    return [_stamp(d, "python " + d.get("command", "scripts/benchmark_decimation.py")), ""] + _table(header, rows)


def table_scene(results: Path) -> list[str]:
    """``benchmark_scene.py``: the synthetic table-top scene at several sizes, against Poisson."""
    d = _load(results, "scene")
    rows = []
    for e in d["scenes"]:
        o = e["ours"]
        objs = o.get("objects", [])
        f05 = min((r["f05"] for r in objs), default=None)
        nc = min((r["nc"] for r in objs), default=None)
        p10, p11 = e.get("poisson10", {}), e.get("poisson11", {})
        data = e.get("data")
        rows.append([
            e["objects"], f"{e['points']:,}",
            data["points_dropped"] if data else "-",
            f"{data['normals_changed']} ({data['normals_changed_on_folded_faces']})" if data else "-",
            o["exit"], f"{o['seconds']:.0f}", f"{o['seconds'] / max(e['objects'], 1):.0f}",
            f"{o['peak_rss_mb']:.0f}", _f(f05, 4), _f(nc, 4), _f(o.get("ground"), 4), o.get("pieces", "-"), o.get("faces", "-"),
            f"{p10.get('seconds', float('nan')):.0f}", f"{p11.get('seconds', float('nan')):.0f}",
            f"{o['seconds'] / p11['seconds']:.1f}" if p11.get("seconds") else "-",
            "-" if math.isnan(p11.get("peak_rss_mb", math.nan)) else f"{p11['peak_rss_mb']:.0f}",
        ])
    header = ["objects", "points", "points dropped", "given normals changed (on folded faces)", "exit", "seconds", "seconds per object", "peak MB", "worst object F@0.5%",
              "worst object NC", "ground covered", "pieces", "faces", "Poisson d10 s", "Poisson d11 s", "ours / d11", "Poisson d11 peak MB"]
    st = d.get("settings", {})
    command = "python scripts/benchmark_scene.py --objects " + " ".join(str(n) for n in st.get("objects", [])) + f" --jobs {st.get('jobs', 2)}"
    return [_stamp(d, command), ""] + _table(header, rows)


def table_startup(results: Path) -> list[str]:
    """``benchmark_startup.py``: start-up of three commands, an older commit against this tree."""
    d = _load(results, "startup")
    st = d.get("settings", {})
    rows = []
    for r in d["rows"]:
        a, b = r["before"], r["now"]
        rows.append([
            f"`{r['command']}`", f"{a['wall_s']:.2f}", f"{b['wall_s']:.2f}", f"{r['wall_ratio']:.1f}",
            f"{a['import_s']:.2f}", f"{b['import_s']:.2f}", ", ".join(a["heavy"]) or "-", ", ".join(b["heavy"]) or "-",
        ])
    before = st.get("before_commit", st.get("before", "?"))
    header = ["command", f"wall s ({before})", "wall s (now)", "ratio", f"imports s ({before})", "imports s (now)",
              f"heavy imports ({before})", "heavy imports (now)"]
    command = f"python scripts/benchmark_startup.py --before {st.get('before', '?')} --repeats {st.get('repeats', '?')}"
    return [_stamp(d, command), ""] + _table(header, rows)


def table_precision(results: Path) -> list[str]:
    """``benchmark_precision.py``: bfloat16 against float32 hidden products, per shape."""
    d = _load(results, "precision")
    st = d.get("settings", {})
    rows = []
    for r in d["rows"]:
        a, b = r["float32"], r["bfloat16"]
        rows.append([r["shape"], f"{a['fit_s']:.1f}", f"{b['fit_s']:.1f}", f"{r['speedup']:.2f}",
                     f"{a['f05']:.4f}", f"{b['f05']:.4f}", f"{a['nc']:.4f}", f"{b['nc']:.4f}",
                     _e(a["chamfer_rel"]), _e(b["chamfer_rel"])])
    header = ["shape", "fit s float32", "fit s bfloat16", "float32 / bfloat16", "F@0.5% float32", "F@0.5% bfloat16",
              "NC float32", "NC bfloat16", "Chamfer float32", "Chamfer bfloat16"]
    command = f"python scripts/benchmark_precision.py --shapes {' '.join(st.get('shapes', []))} --threads {st.get('threads', '?')}"
    return [_stamp(d, command), ""] + _table(header, rows)


TABLES: dict[str, Callable[[Path], list[str]]] = {
    "startup": table_startup,
    "precision": table_precision,
    "distance": table_distance,
    "cleanup": table_cleanup,
    "cleanup_scene": table_cleanup_scene,
    "scans_given": table_scans_given,
    "holes": table_holes,
    "morph": table_morph,
    "real_scenes": table_real_scenes,
    "decimation": table_decimation,
    "scene": table_scene,
}


def make_table(name: str, results: Path) -> str:
    """The body of table ``name`` (the text between its markers), made from ``results``."""
    if name in TABLES:
        lines = TABLES[name](results)
    elif name.startswith("image_sweep_"):
        lines = table_image_sweep(results, name)
    else:
        raise TableError(f"no rule makes a table named {name!r}")
    return "\n".join(lines) + "\n"


def regenerate(text: str, results: Path) -> tuple[str, list[str], list[str]]:
    """Return ``(new_text, changed_names, errors)`` for a README's text."""
    opened = OPENING.findall(text)
    matched = [m.group("name") for m in MARKER.finditer(text)]
    errors = [f"table:{n}: no closing marker <!-- /table:{n} -->" for n in opened if opened.count(n) > matched.count(n)]
    errors += [f"table:{n}: appears more than once" for n in sorted(set(matched)) if matched.count(n) > 1]
    changed: list[str] = []

    def replace(m: re.Match) -> str:
        name = m.group("name")
        try:
            body = make_table(name, results)
        except TableError as exc:
            errors.append(f"table:{name}: {exc}")
            return m.group(0)
        if body != m.group("body"):
            changed.append(name)
        return f"<!-- table:{name} -->\n{body}<!-- /table:{name} -->"

    return MARKER.sub(replace, text), changed, errors


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if any table differs from its JSON")
    ap.add_argument("--readme", type=Path, default=README, help="markdown file holding the tables (default: scripts/README.md)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the results JSON files (default: scripts/results)")
    args = ap.parse_args(argv)
    try:
        text = args.readme.read_text()
    except OSError as exc:
        print(f"make_tables: {args.readme}: {exc}", file=sys.stderr)
        return 2
    new, changed, errors = regenerate(text, args.results)
    for err in errors:
        print(f"make_tables: {args.readme}: {err}", file=sys.stderr)
    if args.check:
        for name in changed:
            print(f"make_tables: {args.readme}: table:{name} differs from what its JSON gives (run python scripts/make_tables.py)", file=sys.stderr)
        return 1 if changed or errors else 0
    if new != text:
        tmp = args.readme.with_name(f".{args.readme.name}.tmp{os.getpid()}")
        tmp.write_text(new)
        os.replace(tmp, args.readme)
    print(f"make_tables: {len(MARKER.findall(new))} tables, {len(changed)} rewritten: {', '.join(changed) or 'none'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
