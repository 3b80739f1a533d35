"""BERT-style WordPiece tokenizer shared by the trainer and, through golden vectors, by nlu/.

The rules (nlu/tokenizer.go implements the same ones, and nlu's tests compare the two on the
golden vectors this module writes):
  1. NFKC normalisation (full-width letters and punctuation become their ASCII forms).
  2. Control characters are dropped, every whitespace character becomes a space.
  3. Each CJK ideograph becomes a word of its own, as in BERT.
  4. Lower-casing, then NFD and removal of combining marks (accents).
  5. Whitespace split, then every punctuation character is a word of its own.
  6. Greedy longest-match-first WordPiece with "##" continuations; a word longer than
     100 characters, or one that cannot be covered, is [UNK].
"""
import unicodedata

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIALS = [PAD, UNK, CLS, SEP, MASK]
MAX_WORD = 100


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def is_whitespace(ch):
    if ch in " \t\n\r":
        return True
    return unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Cn")


def is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def basic_tokens(text):
    text = unicodedata.normalize("NFKC", text)
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or is_control(ch):
            continue
        if is_whitespace(ch):
            out.append(" ")
        elif is_cjk(cp):
            out.append(" " + ch + " ")
        else:
            out.append(ch)
    text = "".join(out).lower()
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    words = []
    for w in text.split():
        cur = ""
        for ch in w:
            if is_punct(ch):
                if cur:
                    words.append(cur)
                    cur = ""
                words.append(ch)
            else:
                cur += ch
        if cur:
            words.append(cur)
    return words


class WordPiece:
    def __init__(self, vocab):
        self.vocab = list(vocab)
        self.ids = {t: i for i, t in enumerate(self.vocab)}

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls([line.rstrip("\n") for line in f])

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            for t in self.vocab:
                f.write(t + "\n")

    def word_pieces(self, word):
        if len(word) > MAX_WORD:
            return [UNK]
        pieces, start = [], 0
        while start < len(word):
            end, cur = len(word), None
            while start < end:
                sub = word[start:end]
                if start > 0:
                    sub = "##" + sub
                if sub in self.ids:
                    cur = sub
                    break
                end -= 1
            if cur is None:
                return [UNK]
            pieces.append(cur)
            start = end
        return pieces

    def tokenize(self, text):
        out = []
        for w in basic_tokens(text):
            out.extend(self.word_pieces(w))
        return out

    def encode(self, text, max_len):
        """[CLS] pieces [SEP], truncated to max_len ids in all."""
        pieces = self.tokenize(text)[: max_len - 2]
        return [self.ids[CLS]] + [self.ids[p] for p in pieces] + [self.ids[SEP]]


def build_vocab(texts, max_size=12000, min_freq=2):
    """A WordPiece vocabulary from a corpus: the specials, every character alone and as a
    continuation, the most frequent whole words, and the most frequent word-initial pieces and
    ## continuations (up to 8 characters), so that an unseen word splits into meaningful parts
    rather than single letters."""
    from collections import Counter
    words, chars = Counter(), Counter()
    for t in texts:
        for w in basic_tokens(t):
            words[w] += 1
            chars.update(w)
    vocab = list(SPECIALS)
    seen = set(vocab)

    def add(tok):
        if tok not in seen:
            seen.add(tok)
            vocab.append(tok)

    for c in "abcdefghijklmnopqrstuvwxyz0123456789":
        add(c)
        add("##" + c)
    for c, _ in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0])):
        add(c)
    for c, _ in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0])):
        if not is_cjk(ord(c)) and not is_punct(c):
            add("##" + c)
    pieces = Counter()
    for w, n in words.items():
        if len(w) > 1:
            pieces[w] += n * 2  # whole words first
        if len(w) < 4 or any(is_cjk(ord(c)) for c in w):
            continue
        for k in range(2, min(len(w), 9)):
            pieces[w[:k]] += n
        for k in range(1, len(w) - 1):
            suf = w[k:]
            if 2 <= len(suf) <= 8:
                pieces["##" + suf] += n
    for tok, n in sorted(pieces.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= max_size:
            break
        if n >= min_freq or (not tok.startswith("##") and words.get(tok, 0) > 0):
            add(tok)
    return WordPiece(vocab)


def fnv1a32(data):
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def ngram_ids(text, buckets, lo=3, hi=5, max_ngrams=256):
    """Hashed features of text as ids 1..buckets (0 is padding): the character n-grams (lo..hi
    characters) of every word with < and > marking the word's ends, then every pair of
    neighbouring words joined by a space. The Go tokenizer computes the same ids. CJK words
    are single characters, so their n-grams are "<字>" pieces and their pairs are bigrams."""
    out = []
    words = basic_tokens(text)
    for w in words:
        s = "<" + w + ">"
        for n in range(lo, hi + 1):
            for i in range(0, len(s) - n + 1):
                out.append(1 + fnv1a32(s[i:i + n].encode("utf-8")) % buckets)
                if len(out) == max_ngrams:
                    return out
    for a, b in zip(words, words[1:]):
        out.append(1 + fnv1a32((a + " " + b).encode("utf-8")) % buckets)
        if len(out) == max_ngrams:
            return out
    return out
