"""The cache is owner-only on a shared host."""
import stat

from core.paths import private_folder


def test_the_cache_folder_is_created_and_kept_owner_only(tmp_path):
    folder = private_folder(tmp_path / "cache" / "nested")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o755)  # e.g. created earlier by another tool: tightened on the next start
    assert stat.S_IMODE(private_folder(folder).stat().st_mode) == 0o700
