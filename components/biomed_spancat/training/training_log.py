"""The training logger: spaCy's table, with progress between evaluations and losses explained.

spaCy's ConsoleLogger prints one row per evaluation with each component's loss
summed over the steps since the previous row, and nothing in between. With a
transformer the first rows are hard to read: the transformer's "loss" is not a
loss it minimises but the squared size of the gradients its listeners
(spancat) pass back to it, summed over up to `eval_frequency` steps, so it can
read 282,824 at step 100 beside a spancat loss of a few hundred.

`biomed.ConsoleLogger.v1` prints a legend that says so, divides every loss
by the number of steps it was summed over (so rows compare, the first one
too), and keeps a progress bar over all training steps with words/s and the
time left between evaluations. On a terminal the bar redraws in place; in a
log (no terminal) one progress line follows each row, and one more every
`log_every` seconds between rows.

Registered through the `spacy_loggers` entry point.
"""

import sys
import textwrap
import time
from typing import IO, Any, Callable, Dict, List, Optional, Tuple

import tqdm
from spacy.language import Language
from wasabi import Printer

__all__ = ["LOSS_LEGEND", "console_logger", "format_duration", "progress_line"]

LOSS_LEGEND = (
    "Losses are per step: each component's loss summed over the steps since the previous "
    "row, divided by their number. LOSS {trf}: the squared size of the gradients the "
    "listening components send back to the transformer, not a loss it minimises; its scale "
    "is not comparable with the other losses."
)


def format_duration(seconds: Optional[float]) -> str:
    """A short duration for progress lines: "45 s", "12 min", "1.5 h"; "?" when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def progress_line(step: int, max_steps: int, words: int, seconds: float) -> str:
    """One progress line: steps done, words/s so far and the time left at that pace.

    step (int): The last step done (0-based, as spaCy counts).
    max_steps (int): The step training stops at (0: no limit, then no ETA).
    words (int): Words trained on so far.
    seconds (float): Seconds of training so far.
    RETURNS (str): E.g. "step 100/300 (33%), 1,234 words/s, about 4 min left".
    """
    done = step + 1
    wps = words / seconds if seconds > 0 else None
    rate = f"{wps:,.0f} words/s" if wps is not None else "? words/s"
    if max_steps:
        left = (max_steps - step) * seconds / done if seconds > 0 else None
        return f"step {step}/{max_steps} ({100 * step / max_steps:.0f}%), {rate}, about {format_duration(left)} left"
    return f"step {step}, {rate}"


def console_logger(
    progress_bar: bool = True,
    per_step: bool = True,
    legend: bool = True,
    refresh: float = 0.5,
    log_every: float = 60.0,
) -> Callable[[Language, IO, IO], Tuple[Callable[[Optional[Dict[str, Any]]], None], Callable[[], None]]]:
    """Registered as `biomed.ConsoleLogger.v1`: spaCy's training table, made readable.

    progress_bar (bool): A bar over all `max_steps` steps on stderr, with
        words/s and the time left (on a terminal; elsewhere a progress line
        after each row).
    per_step (bool): Divide each loss by the steps it was summed over.
    legend (bool): Print what the columns mean before the table.
    refresh (float): At most one redraw of the bar in this many seconds.
    log_every (float): Without a terminal, a progress line between rows every
        this many seconds (0: after every step; negative: only after rows).
    RETURNS (Callable): spaCy's logger set-up: (nlp, stdout, stderr) -> (log_step, finalize).
    """

    def setup_printer(
        nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr
    ) -> Tuple[Callable[[Optional[Dict[str, Any]]], None], Callable[[], None]]:
        write = lambda text: print(text, file=stdout, flush=True)  # noqa: E731
        msg = Printer(no_print=True)
        logged = [n for n, p in nlp.pipeline if getattr(p, "is_trainable", False)]
        training = nlp.config["training"]
        max_steps = int(training.get("max_steps") or 0)
        score_cols = [c for c, w in training["score_weights"].items() if w is not None]
        cols = ["E", "#"] + [f"LOSS {p.upper()}" for p in logged] + [c.upper() for c in score_cols] + ["SCORE"]
        widths = [3, 6] + [max(10, len(f"LOSS {p}")) for p in logged] + [max(6, len(c)) for c in score_cols] + [6]
        aligns = ["r"] * len(cols)
        if legend:
            trf = [p for p in logged if "transformer" in p or "trf" in p]
            write(msg.info(
                ("Losses are per step" if per_step else "Losses are sums")
                + f"; scores in % on the dev data, every {training['eval_frequency']} steps"
                + (f", up to step {max_steps}" if max_steps else "")
            ))
            if trf:
                legend_text = LOSS_LEGEND if per_step else LOSS_LEGEND.replace("divided by their number", "not divided")
                write(textwrap.fill(legend_text.format(trf=trf[0].upper()), width=88))
        write(msg.row(cols, widths=widths, aligns=aligns, spacing=2))
        write(msg.row(["-" * w for w in widths], spacing=2))
        state: Dict[str, Any] = {"last_step": -1, "bar": None, "words_per_step": None,
                                 "steps": 0, "start": time.monotonic(), "last_line": time.monotonic()}
        bar: Optional[tqdm.tqdm] = None
        if progress_bar:
            # disable=None: drawn on a terminal only; logs get progress lines
            bar = tqdm.tqdm(total=max_steps or None, disable=None, leave=False, file=stderr,
                            unit="step", dynamic_ncols=True, desc="training", mininterval=refresh)

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            state["steps"] += 1
            if info is None:
                if bar is not None and not bar.disable:
                    bar.update(1)
                    rate = bar.format_dict.get("rate")
                    if rate and state["words_per_step"]:
                        bar.set_postfix_str(f"{rate * state['words_per_step']:,.0f} words/s", refresh=False)
                elif progress_bar and log_every >= 0 and state["words_per_step"] is not None:
                    now = time.monotonic()
                    if now - state["last_line"] >= log_every:
                        # spaCy counts steps from 0: this call is step steps - 1
                        step = state["steps"] - 1
                        words = int(state["words_per_step"] * (step + 1))
                        write("  " + progress_line(step, max_steps, words, now - state["start"]))
                        state["last_line"] = now
                return
            state["last_line"] = time.monotonic()
            step = int(info["step"])
            n_steps = max(1, step - state["last_step"])
            state["last_step"] = step
            state["words_per_step"] = info["words"] / (step + 1)
            losses: List[str] = []
            for name in logged:
                loss = float(info["losses"].get(name, 0.0))
                losses.append(f"{loss / n_steps if per_step else loss:,.2f}")
            scores = []
            for col in score_cols:
                score = info["other_scores"].get(col, 0.0)
                score = float(score) if score is not None else 0.0
                scores.append(f"{score if col == 'speed' else 100 * score:.2f}")
            row = [info["epoch"], step] + losses + scores + [f"{float(info['score']):.2f}"]
            if bar is not None and not bar.disable:
                bar.clear()
                write(msg.row(row, widths=widths, aligns=aligns, spacing=2))
                bar.update(1)
                bar.refresh()
            else:
                write(msg.row(row, widths=widths, aligns=aligns, spacing=2))
                if progress_bar:
                    write("  " + progress_line(step, max_steps, int(info["words"]), float(info["seconds"])))

        def finalize() -> None:
            if bar is not None:
                bar.close()

        return log_step, finalize

    return setup_printer
