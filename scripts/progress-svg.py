#!/usr/bin/env python3
"""Render a mid-rollout frame of the live progress view as an SVG for the README.

Runs the demo inside a pseudo-terminal (the progress view is only drawn when
stderr is a terminal), replays its output through a VT100 emulator, samples the
screen every ~100 ms, picks a frame with the bar between 30% and 70% and an
instance in flight, and writes it as a standalone SVG.

    python3 scripts/progress-svg.py [OUTPUT]      # default: docs/progress.svg

Needs the built binary (target/debug/privlink-restart) and pyte.
"""
import os, re, select, subprocess, sys, time, fcntl, struct, termios
from xml.sax.saxutils import escape

try:
    import pyte
except ImportError:
    sys.exit("pyte is missing: install it with `python3 -m pip install pyte`")

COLS, ROWS = 110, 30
COMMAND = ["target/debug/privlink-restart", "demo", "--instances", "12", "--speed", "10", "--faults"]
IN_FLIGHT = ("restarting", "reconnecting", "verifying", "draining", "rebooting", "rejoining", "restoring")
BAR = re.compile(r"\[[=> ]+\] (\d+)/(\d+) agents")

BACKGROUND, FOREGROUND = "#1e1e2e", "#d4d4d4"
PALETTE = {  # pyte names ("brown" is ANSI yellow) -> hex
    "black": "#45475a", "red": "#f38ba8", "green": "#a6e3a1", "brown": "#f9e2af",
    "blue": "#89b4fa", "magenta": "#cba6f7", "cyan": "#94e2d5", "white": "#bac2de",
    "brightblack": "#6c7086", "brightred": "#f7a1b9", "brightgreen": "#b9f0b4",
    "brightbrown": "#fbecc4", "brightblue": "#a5c6fb", "brightmagenta": "#d9bcfa",
    "brightcyan": "#aeeee4", "brightwhite": "#ffffff",
}
FONT, SIZE, CELL_W, CELL_H, PAD, TITLE_H = (
    "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace", 13, 7.8, 17, 14, 28)


def colour(name, default):
    if name == "default":
        return default
    if re.fullmatch(r"[0-9a-fA-F]{6}", name):  # 256-colour / truecolour cells
        return "#" + name.lower()
    return PALETTE.get(name, default)


def score(lines):
    """None if the frame does not qualify, else (in-flight lines, distinct states, -distance from 50%)."""
    bar = next((m for m in map(BAR.search, lines) if m), None)
    if not bar:
        return None
    ratio = int(bar.group(1)) / int(bar.group(2))
    states = [s for l in lines if l.startswith("  ") for s in IN_FLIGHT if f" {s} " in l]
    if not (0.3 <= ratio <= 0.7) or not states:
        return None
    return len(states), len(set(states)), -abs(ratio - 0.5)


def capture():
    """Run the demo in a pty; return the best sampled frame as rows of pyte cells."""
    screen = pyte.Screen(COLS, ROWS)
    stream = pyte.ByteStream(screen)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS))
    child = subprocess.Popen(COMMAND, stdin=slave, stdout=slave, stderr=slave,
                             env=env, start_new_session=True)
    os.close(slave)
    best, best_score, next_sample = None, None, time.monotonic()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.02)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            stream.feed(data)
        if time.monotonic() >= next_sample:
            next_sample += 0.1
            s = score(screen.display)
            if s is not None and (best_score is None or s > best_score):
                best_score = s
                best = [[screen.buffer[y][x] for x in range(COLS)] for y in range(ROWS)]
    if child.poll() is None:
        child.kill()
    child.wait()
    os.close(master)
    if best is None:
        sys.exit("no frame with the bar at 30-70% and an instance in flight; try another --speed")
    while best and not "".join(c.data for c in best[-1]).strip():
        best.pop()  # crop blank rows below the view
    return best


def runs(row):
    """Split a row of cells into (start column, text, fg, bg, bold) runs. Non-ASCII
    characters (spinner, '·') get a run of their own so a fallback font cannot shift the rest."""
    out = []
    for x, c in enumerate(row):
        fg, bg = colour(c.fg, FOREGROUND), colour(c.bg, BACKGROUND)
        if c.reverse:
            fg, bg = bg, fg
        ascii_pair = c.data.isascii() and out and out[-1][1][-1:].isascii()
        if ascii_pair and out[-1][2:] == [fg, bg, c.bold]:
            out[-1][1] += c.data
        else:
            out.append([x, c.data, fg, bg, c.bold])
    return out


def svg(frame):
    width = 2 * PAD + COLS * CELL_W
    height = TITLE_H + 2 * PAD + len(frame) * CELL_H
    title = escape(" ".join(["privlink-restart"] + COMMAND[1:]))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
        f'viewBox="0 0 {width:.0f} {height}">',
        f'<rect width="100%" height="100%" rx="8" fill="{BACKGROUND}"/>',
        *(f'<circle cx="{PAD + 6 + i * 18}" cy="{TITLE_H / 2 + 2}" r="6" fill="{c}"/>'
          for i, c in enumerate(("#ff5f57", "#febc2e", "#28c840"))),
        f'<text x="{width / 2:.0f}" y="{TITLE_H / 2 + 6}" text-anchor="middle" fill="#7f849c" '
        f'font-family="{FONT}" font-size="12">{title}</text>',
        f'<g font-family="{FONT}" font-size="{SIZE}" xml:space="preserve">',
    ]
    for y, row in enumerate(frame):
        top = TITLE_H + PAD + y * CELL_H
        spans = []
        for x, text, fg, bg, bold in runs(row):
            left = PAD + x * CELL_W
            if bg != BACKGROUND:
                parts.append(f'<rect x="{left:.1f}" y="{top}" width="{len(text) * CELL_W:.1f}" '
                             f'height="{CELL_H}" fill="{bg}"/>')
            if text.strip():
                weight = ' font-weight="bold"' if bold else ""
                text = text.rstrip()  # textLength pins the run to the cell grid in any font
                spans.append(f'<tspan x="{left:.1f}" textLength="{len(text) * CELL_W:.1f}" '
                             f'lengthAdjust="spacing" fill="{fg}"{weight}>{escape(text)}</tspan>')
        if spans:
            parts.append(f'<text y="{top + CELL_H - 4}">{"".join(spans)}</text>')
    parts += ["</g>", "</svg>"]
    return "\n".join(parts) + "\n"


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    output = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(root, "docs", "progress.svg")
    os.chdir(root)
    frame = capture()
    with open(output, "w", encoding="utf-8") as f:
        f.write(svg(frame))
    print("\n".join("".join(c.data for c in row).rstrip() for row in frame))
    print(f"\nwrote {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
