"""Byte-level damage to a CSV file, shared by the fuzz tests of the book and the price file."""


def damaged(data: bytes, kind: str, at: int, inserted: bytes = b"") -> bytes:
    """``data`` with one damage of ``kind``: ``insert`` puts ``inserted`` at byte ``at``,
    ``truncate`` cuts there; the others (byte-order marks, UTF-16, line endings, empty, no
    final newline) change the whole file."""
    if kind == "insert":
        return data[:at] + inserted + data[at:]
    if kind == "truncate":
        return data[:at]
    whole = {
        "bom": lambda: b"\xef\xbb\xbf" + data,
        "double_bom": lambda: b"\xef\xbb\xbf\xef\xbb\xbf" + data,
        "utf16": lambda: data.decode("utf-8").encode("utf-16"),
        "crlf": lambda: data.replace(b"\n", b"\r\n"),
        "cr": lambda: data.replace(b"\n", b"\r"),
        "empty": lambda: b"",
        "no_final_newline": lambda: data.rstrip(b"\n"),
    }
    return whole[kind]()
