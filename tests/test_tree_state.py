"""tree_state, the before/after check of every malformed-input case: its digests see every change of a file's
bytes, in sparse files too (whose holes it skips instead of reading)."""

from helpers import file_digest, tree_state


def _sparse(path, size, writes=()):
    with open(path, "wb") as file:
        file.truncate(size)
        for at, data in writes:
            file.seek(at)
            file.write(data)
    return path


def test_equal_bytes_give_equal_digests_and_any_change_another(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(bytes(range(256)) * 9000)  # more than one 1 MiB block
    b.write_bytes(a.read_bytes())
    assert file_digest(a) == file_digest(b)
    changed = bytearray(a.read_bytes())
    changed[-1] ^= 1
    b.write_bytes(bytes(changed))
    assert file_digest(a) != file_digest(b)
    b.write_bytes(a.read_bytes()[:-1])
    assert file_digest(a) != file_digest(b)


def test_a_sparse_file_changed_in_its_hole_its_data_or_its_size_gets_another_digest(tmp_path):
    size = 2 << 30
    path = _sparse(tmp_path / "sparse", size, [(0, b"head"), (size - 4, b"tail")])
    before = file_digest(path)
    assert file_digest(path) == before
    for at, byte in ((1 << 30, b"x"), (1, b"E"), (size - 1, b"L")):  # in the hole, in the head, in the tail
        with open(path, "r+b") as file:
            file.seek(at)
            old = file.read(1)
            file.seek(at)
            file.write(byte)
        assert file_digest(path) != before, at
        _sparse(path, size, [(0, b"head"), (size - 4, b"tail")])
        assert file_digest(path) == before, old
    with open(path, "r+b") as file:
        file.truncate(size + 1)
    assert file_digest(path) != before


def test_tree_state_names_every_file_and_folder(tmp_path):
    (tmp_path / "d").mkdir()
    _sparse(tmp_path / "d" / "big", 1 << 30)
    state = tree_state(tmp_path)
    assert state[str(tmp_path / "d")] == "dir" and set(state) == {str(tmp_path / "d"), str(tmp_path / "d" / "big")}
    (tmp_path / "d" / "new").write_text("")
    assert tree_state(tmp_path) != state
