"""Near-duplicate search between evaluation sets and pretraining corpora.

RoZ attributes part of CLIP's natural-shift robustness to overlap between test sets and
pretraining data; the CLIP paper measured it with a duplicate detector and compared accuracy
on the overlapping and clean subsets. This package makes that measurement a suite:

* :mod:`corpus`    tar shards (img2dataset/webdataset), image folders, embedding files;
* :mod:`embed`     a model's image tower over a stream, sharded, stored in chunks;
* :mod:`knn`       exact cosine top-k, streamed over the corpus, sharded over devices/hosts;
* :mod:`hashes`    pHash / dHash and Hamming search on the host;
* :mod:`calibrate` thresholds from synthetic near-duplicates;
* :mod:`analysis`  flagged pairs, overlap rate, accuracy on overlapping vs clean subsets;
* :mod:`gallery`   a self-contained HTML page of the top matches;
* :mod:`run`       the suite behind ``configs/overlap.py``.
"""
