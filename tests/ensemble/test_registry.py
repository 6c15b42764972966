import pytest

from ensemble.errors import RegistryError
from ensemble.registry import Registry


def test_register_get_and_errors():
    reg = Registry("fuser")

    @reg.register("alpha")
    class Alpha:
        pass

    assert reg.get("alpha") is Alpha and "alpha" in reg and reg.names() == ["alpha"]
    with pytest.raises(RegistryError, match="unknown fuser 'beta'; choose one of: alpha"):
        reg.get("beta")
    with pytest.raises(RegistryError, match="registered twice"):
        reg.register("alpha")(object)
