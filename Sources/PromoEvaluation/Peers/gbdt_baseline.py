#!/usr/bin/env python3
"""Gradient-boosted-trees baseline (LightGBM on flattened features) for the promotion evaluation.

The Swift evaluation command calls this as a peer: it writes the training and test items as CSV,
runs this script, and reads the predictions back. One model per task, each trained only on the
rows where that task's label is known.

    python3 gbdt_baseline.py --train TRAIN.csv --test TEST.csv --out PRED.csv \
        [--seed 1] [--threads 2] [--rounds 600] [--validation-fraction 0.1] [--gmv-loss auto|l2|l1]

Input CSV (UTF-8, header row, commas, no quoting):
    item_id          first column, any non-empty string, copied to the output
    label_log_gmv    log1p(promotion-day GMV)          -> task gmv, regression (auto: l2 and l1, the lower
                                                          validation GMV MAE kept)
    label_bsp        0/1                               -> task bsp, binary
    label_ss         integer 1..10                     -> task ss, multiclass (10 classes)
    label_ja         0/1                               -> task ja, binary
    f_*              numeric features; empty cell = missing (NaN)
    c_*              categorical features, any string; empty cell = missing
An empty label cell means the label is unknown for that item. A label column may be absent
(the task is skipped). Any other column name is an error. The test CSV must have the same set
of columns (order may differ); its labels are never read.

Categorical codes come from the training file only (sorted distinct values -> 0..K-1); a test
value the training file never had, like an empty cell, becomes NaN, which LightGBM treats as missing.

Each task splits its labelled rows into fit/validation with a permutation seeded by --seed and
the task, stops early after 50 rounds without improvement on validation, and predicts the test
rows with the best iteration. A task with no known label (or, for a binary task, only one class)
is skipped and its output cells are empty. With --validation-fraction 0 there is no validation
set and every task runs all --rounds rounds.

Output CSV: header item_id,gmv,bsp,ss,ja; one row per test row, in input order:
    gmv  expm1(max(prediction, 0)), money scale
    bsp  probability of label 1
    ss   most probable class, 1..10
    ja   probability of label 1
The output is written to a temporary file beside --out and renamed into place at the end, so a
failed run leaves no partial file. Progress goes to stderr, nothing to stdout.

Exit status: 0 on success, 2 on bad arguments or malformed input (the message names the file,
the line and the column), 1 on anything else.
"""

import argparse
import csv
import gc
import itertools
import math
import os
import sys
import time

import numpy as np

# LightGBM's OpenMP threads spin while they wait for each other. When the machine has more runnable
# threads than cores (the evaluation trains other models beside this), a spinning thread holds the core
# the thread it waits for needs: measured 8x slower per round with 2 threads on a busy 2-core machine.
# Waiting threads sleep instead. Must be set before lightgbm loads the OpenMP runtime; the caller's
# environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TASKS = (
    # name, label column, kind
    ("gmv", "label_log_gmv", "regression"),
    ("bsp", "label_bsp", "binary"),
    ("ss", "label_ss", "multiclass"),
    ("ja", "label_ja", "binary"),
)
NUM_CLASSES_SS = 10
EARLY_STOPPING_ROUNDS = 50
CHUNK_ROWS = 8192


class InputError(Exception):
    """Malformed input or arguments: reported as one line, exit status 2."""


def log(message):
    print(f"gbdt_baseline: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Reading


def classify_header(header, path):
    """Checks the header and returns the column names (item_id first)."""
    if not header:
        raise InputError(f"{path}: empty file (no header row)")
    if header[0] != "item_id":
        raise InputError(f"{path}: the first column must be 'item_id', found {header[0]!r}")
    seen = set()
    label_columns = {column for _, column, _ in TASKS}
    for name in header:
        if name in seen:
            raise InputError(f"{path}: column {name!r} appears twice in the header")
        seen.add(name)
        if name == "item_id" or name in label_columns:
            continue
        if name.startswith("f_") and len(name) > 2:
            continue
        if name.startswith("c_") and len(name) > 2:
            continue
        raise InputError(
            f"{path}: column {name!r} is neither item_id, a label column "
            f"({', '.join(sorted(label_columns))}), an f_ numeric nor a c_ categorical column"
        )
    return list(header)


def parse_floats(strings, path, column, lines):
    """Column of strings -> float64 array; empty (or blank) cells become NaN.

    lines[i] is the file line of strings[i], for the error message. Python's float() through map is
    several times faster here than numpy's string-to-float conversion."""
    n = len(strings)
    try:
        values = np.fromiter(map(float, [s or "nan" for s in strings]), np.float64, n)
    except ValueError:
        values = None
    if values is None:  # blank cells, or a bad one: the slow path finds which
        cells = []
        for i, s in enumerate(strings):
            if s.strip() == "":
                cells.append(math.nan)
                continue
            try:
                cells.append(float(s))
            except ValueError:
                raise InputError(
                    f"{path}: line {lines[i]}, column {column}: non-numeric value {s!r}"
                ) from None
        values = np.array(cells, dtype=np.float64)
    bad = np.isinf(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"{path}: line {lines[i]}, column {column}: infinite value {strings[i]!r} "
            f"(leave the cell empty for a missing value)"
        )
    return values


def read_table(path, expected_columns=None):
    """Reads a CSV in chunks of rows.

    Returns (columns, item_ids, lines, numeric, strings):
      columns   the header, in file order
      item_ids  list of str
      lines     list of the file line of each data row (for messages)
      numeric   {column: float64 array} for f_ columns and (train only) label columns
      strings   {column: list of str} for c_ columns
    With expected_columns (the training header) the header must hold the same set of columns,
    and label columns are not read at all.
    """
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as error:
        raise InputError(f"{path}: cannot open: {error.strerror}") from None
    # Millions of short-lived strings and tuples: the cyclic collector would rescan them over and over
    # (a third of the reading time) and there are no cycles to find.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _read_table(handle, path, expected_columns)
    finally:
        handle.close()
        if collecting:
            gc.enable()


def _read_table(handle, path, expected_columns):
    reader = csv.reader(handle)
    try:
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path}: empty file (no header row)")
        columns = classify_header(header, path)
        if expected_columns is not None and set(columns) != set(expected_columns):
            missing = [c for c in expected_columns if c not in set(columns)]
            extra = [c for c in columns if c not in set(expected_columns)]
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
            if extra:
                parts.append(f"not in the training file: {', '.join(extra[:10])}" + (" ..." if len(extra) > 10 else ""))
            raise InputError(f"{path}: columns do not match the training file ({'; '.join(parts)})")

        label_names = {column for _, column, _ in TASKS}
        read_labels = expected_columns is None
        numeric_idx = [
            (j, name) for j, name in enumerate(columns)
            if name.startswith("f_") or (read_labels and name in label_names)
        ]
        string_idx = [(j, name) for j, name in enumerate(columns) if name.startswith("c_")]
        width = len(columns)

        item_ids = []
        row_lines = []
        numeric_chunks = {name: [] for _, name in numeric_idx}
        strings = {name: [] for _, name in string_idx}
        exhausted = False
        while not exhausted:
            chunk = []
            lines = []
            exhausted = True
            for row in itertools.islice(reader, CHUNK_ROWS):
                exhausted = False
                if not row:  # blank line
                    continue
                if len(row) != width:
                    raise InputError(
                        f"{path}: line {reader.line_num}: {len(row)} fields, the header has {width}"
                    )
                chunk.append(row)
                lines.append(reader.line_num)
            if not chunk:
                continue
            cells = list(zip(*chunk))
            del chunk
            ids = cells[0]
            for i, item in enumerate(ids):
                if item == "":
                    raise InputError(f"{path}: line {lines[i]}: empty item_id")
            item_ids.extend(ids)
            row_lines.extend(lines)
            for j, name in numeric_idx:
                numeric_chunks[name].append(parse_floats(cells[j], path, name, lines))
            for j, name in string_idx:
                strings[name].extend(cells[j])
    except csv.Error as error:
        raise InputError(f"{path}: line {reader.line_num}: {error}") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not valid UTF-8 ({error.reason} at byte {error.start})") from None

    numeric = {
        name: (np.concatenate(parts) if parts else np.empty(0, np.float64))
        for name, parts in numeric_chunks.items()
    }
    return columns, item_ids, row_lines, numeric, strings


# ---------------------------------------------------------------------------------------------
# Features and labels


def build_features(columns, n, numeric, strings, categories=None):
    """Feature matrix (n rows) in training-header order.

    Returns (X, feature names, categorical column indices, categories); categories maps each c_
    column to {value: code} and is built here when not given (training file)."""
    feature_names = [c for c in columns if c.startswith("f_") or c.startswith("c_")]
    X = np.empty((n, len(feature_names)), dtype=np.float64)
    build = categories is None
    if build:
        categories = {}
    categorical = []
    for k, name in enumerate(feature_names):
        if name.startswith("f_"):
            X[:, k] = numeric[name]
            continue
        categorical.append(k)
        values = strings[name]
        if build:
            distinct = sorted(set(values) - {""})
            categories[name] = {v: float(i) for i, v in enumerate(distinct)}
        codes = categories[name]
        X[:, k] = [codes.get(v, math.nan) for v in values]
    return X, feature_names, categorical, categories


def check_labels(name, kind, y, path, lines):
    """Checks the known labels of one task (empty cells are NaN and unknown)."""
    known = ~np.isnan(y)
    values = y[known]
    if kind == "binary":
        bad = (values != 0) & (values != 1)
        what = "0 or 1"
    elif kind == "multiclass":
        bad = (values != np.round(values)) | (values < 1) | (values > NUM_CLASSES_SS)
        what = f"an integer 1..{NUM_CLASSES_SS}"
    else:
        bad = np.zeros(values.shape, bool)
        what = ""
    if bad.any():
        row = int(np.flatnonzero(known)[np.argmax(bad)])
        raise InputError(
            f"{path}: line {lines[row]}, column {name}: label {float(y[row])!r} is not {what}"
        )


# ---------------------------------------------------------------------------------------------
# Training


def train_task(lgb, task, kind, X, y, categorical, args, task_index):
    """Trains one task on the rows with a known label.

    Returns (booster, best iteration, summary), or (None, 0, reason) for a skipped task."""
    known = np.flatnonzero(~np.isnan(y))
    if known.size == 0:
        return None, 0, "skipped (no known labels)"
    labels = y[known]
    if kind == "binary" and np.unique(labels).size < 2:
        return None, 0, f"skipped (only class {int(labels[0])} among {known.size} labelled rows)"

    # A generator per task, so a task's split does not depend on which other tasks ran.
    rng = np.random.default_rng([args.seed, task_index])
    order = rng.permutation(known.size)
    n_val = int(round(args.validation_fraction * known.size))
    if args.validation_fraction > 0:
        n_val = max(1, n_val)
    n_val = min(n_val, known.size - 1)
    val_rows = np.sort(known[order[:n_val]])
    fit_rows = np.sort(known[order[n_val:]])

    if kind == "regression" and args.gmv_loss == "auto" and val_rows.size:
        # Both objectives on the same split; keep the one with the lower validation GMV MAE on the money scale
        # (the metric the forecasts are judged by), so the baseline keeps its best setting on every data set.
        results = []
        for loss in ("l2", "l1"):
            args_for = argparse.Namespace(**{**vars(args), "gmv_loss": loss})
            booster, best, summary = train_task(lgb, task, kind, X, y, categorical, args_for, task_index)
            predicted = np.expm1(np.maximum(booster.predict(X[val_rows], num_iteration=best), 0.0))
            mae = float(np.mean(np.abs(predicted - np.expm1(y[val_rows]))))
            results.append((mae, loss, booster, best, summary))
        mae, loss, booster, best, summary = min(results, key=lambda r: r[0])
        others = ", ".join(f"{r[1]} {r[0]:.6g}" for r in results)
        return booster, best, f"{summary}; objective {loss} by validation GMV MAE ({others})"
    if kind == "regression":
        target = y
        objective = ({"objective": "regression_l1", "metric": "l1"} if args.gmv_loss == "l1"
                     else {"objective": "regression", "metric": "l2"})
    elif kind == "binary":
        target = y
        objective = {"objective": "binary", "metric": "binary_logloss"}
    else:
        target = y - 1.0
        objective = {"objective": "multiclass", "num_class": NUM_CLASSES_SS, "metric": "multi_logloss"}

    params = {
        # Sized so that 100,000 rows × ~450 columns train in minutes on 2 cores.
        "learning_rate": 0.1,
        "num_leaves": 31,
        "min_data_in_leaf": 50,
        "max_bin": 63,
        "feature_fraction": 0.5,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "deterministic": True,
        "force_col_wise": True,  # LightGBM asks for a fixed layout with deterministic
        "seed": args.seed,
        "num_threads": args.threads,
        "verbose": -1,
        **objective,
    }
    dataset_params = {"verbose": -1, "seed": args.seed, "num_threads": args.threads}
    fit_set = lgb.Dataset(
        X[fit_rows], label=target[fit_rows], categorical_feature=categorical,
        params=dataset_params, free_raw_data=True,
    )
    callbacks = []
    valid_sets = []
    record = {}
    if val_rows.size:
        val_set = lgb.Dataset(
            X[val_rows], label=target[val_rows], categorical_feature=categorical,
            reference=fit_set, params=dataset_params, free_raw_data=True,
        )
        valid_sets = [val_set]
        callbacks = [
            lgb.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False),
            lgb.record_evaluation(record),
        ]
    booster = lgb.train(
        params, fit_set, num_boost_round=args.rounds,
        valid_sets=valid_sets, valid_names=["validation"] if valid_sets else None,
        callbacks=callbacks,
    )
    if val_rows.size:
        best = booster.best_iteration or booster.current_iteration()
        history = record["validation"][objective["metric"]]
        summary = (
            f"{fit_rows.size} fit + {val_rows.size} validation rows, best iteration {best}/{args.rounds}, "
            f"validation {objective['metric']} {history[best - 1]:.6g}"
        )
    else:
        best = booster.current_iteration()
        summary = f"{fit_rows.size} fit rows, no validation, {best} iterations"
    return booster, best, summary


def predict_task(booster, best, kind, X, threads):
    """Output cells (strings) for the test rows."""
    if X.shape[0] == 0:
        return []
    raw = booster.predict(X, num_iteration=best, num_threads=threads)
    if kind == "regression":
        return [repr(float(v)) for v in np.expm1(np.maximum(raw, 0.0))]
    if kind == "binary":
        return [repr(float(v)) for v in raw]
    return [str(int(k) + 1) for k in np.argmax(raw, axis=1)]


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description="LightGBM baseline on flattened promotion features.")
    parser.add_argument("--train", required=True, help="training CSV")
    parser.add_argument("--test", required=True, help="test CSV (its labels are ignored)")
    parser.add_argument("--out", required=True, help="prediction CSV to write")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gmv-loss", choices=["auto", "l2", "l1"], default="auto",
                        help="GMV objective on log1p(GMV): squared (l2), absolute error (l1, the median), or auto: "
                             "both, keeping the lower validation GMV MAE")
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not (0.0 <= args.validation_fraction < 1.0):
        parser.error("--validation-fraction must be in [0, 1)")
    if args.seed < 0:
        parser.error("--seed must be non-negative")
    return args


def main(argv):
    args = parse_args(argv)
    try:
        import lightgbm as lgb
    except ImportError:
        raise InputError("the Python package lightgbm is not installed (Deploy/setup.sh installs it)") from None

    started = time.perf_counter()
    columns, train_ids, train_lines, train_numeric, train_strings = read_table(args.train)
    if not any(c.startswith("f_") or c.startswith("c_") for c in columns):
        raise InputError(f"{args.train}: no feature columns (f_ or c_)")
    n_train = len(train_ids)
    if n_train == 0:
        raise InputError(f"{args.train}: no data rows")
    del train_ids
    X_train, feature_names, categorical, categories = build_features(
        columns, n_train, train_numeric, train_strings
    )
    log(
        f"read {args.train}: {n_train} rows, {len(feature_names)} features "
        f"({len(categorical)} categorical) in {time.perf_counter() - started:.1f} s"
    )

    label_arrays = {}
    for task, column, kind in TASKS:
        if column in train_numeric:
            y = train_numeric.pop(column)
            check_labels(column, kind, y, args.train, train_lines)
            label_arrays[task] = y
    train_numeric.clear()
    train_strings.clear()

    started = time.perf_counter()
    _, test_ids, _, test_numeric, test_strings = read_table(args.test, expected_columns=columns)
    X_test, _, _, _ = build_features(columns, len(test_ids), test_numeric, test_strings, categories)
    test_numeric.clear()
    test_strings.clear()
    log(f"read {args.test}: {len(test_ids)} rows in {time.perf_counter() - started:.1f} s")

    outputs = {}
    for index, (task, column, kind) in enumerate(TASKS):
        started = time.perf_counter()
        if task not in label_arrays:
            log(f"{task}: skipped (no {column} column)")
            continue
        booster, best, summary = train_task(lgb, task, kind, X_train, label_arrays[task], categorical, args, index)
        if booster is None:
            log(f"{task}: {summary}")
            continue
        outputs[task] = predict_task(booster, best, kind, X_test, args.threads)
        log(f"{task}: {summary}, {time.perf_counter() - started:.1f} s")

    temporary = f"{args.out}.tmp{os.getpid()}"
    try:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            handle.write("item_id,gmv,bsp,ss,ja\n")
            empty = [""] * len(test_ids)
            columns_out = [outputs.get(task, empty) for task, _, _ in TASKS]
            handle.writelines(
                f"{item},{g},{b},{s},{j}\n" for item, g, b, s, j in zip(test_ids, *columns_out)
            )
        os.replace(temporary, args.out)
    except OSError as error:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise InputError(f"{args.out}: cannot write: {error.strerror}") from None
    log(f"wrote {args.out}: {len(test_ids)} rows")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except InputError as error:
        print(f"gbdt_baseline: error: {error}", file=sys.stderr)
        sys.exit(2)
