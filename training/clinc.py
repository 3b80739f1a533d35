#!/usr/bin/python3
"""Write CLINC150 splits as Kefu training CSVs (text,intent), reading the data set in place.

    /usr/bin/python3 training/clinc.py ../shared/datasets/clinc150/data_full.json var/clinc

writes train.csv (train + oos_train), val.csv (val + oos_val), test.csv (test + oos_test) and
names the data set's unlabelled Wikipedia sentences (for --extra-oos). The files stay out of the repository (var/ is ignored): CLINC150 is CC BY 3.0, Larson et al.,
EMNLP-IJCNLP 2019.
"""
import csv
import json
import os
import sys


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    for name, keys in (("train", ("train", "oos_train")), ("val", ("val", "oos_val")), ("test", ("test", "oos_test"))):
        path = os.path.join(out, name + ".csv")
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "intent"])
            n = 0
            for k in keys:
                for text, intent in data[k]:
                    w.writerow([text, intent])
                    n += 1
        print(f"{path}: {n} rows")
    wiki = os.path.join(os.path.dirname(src), "all_wiki_sents.txt")
    if os.path.exists(wiki):
        print(f"unlabelled sentences for --extra-oos: {wiki}")


if __name__ == "__main__":
    main()
