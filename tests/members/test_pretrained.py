"""Face-pretrained weights as teams hold them: each file layout written with random weights, loaded through
``train-member cnn --weights``, and checked against an independent forward of the public definition."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pretrained_files as pf
import pytest
import torch
from helpers import run_here

from ensemble.errors import DataError
from ensemble.tasks import get_edition
from members.cnn import CnnConfig, CnnNet
from members.pretrained import BACKBONES, build_backbone, prepare, pretrained_backbone
from members.training.runs import Run


def cli(capsys, *args) -> tuple[int, str]:
    """Run ``affect-ens ARGS`` in this process: (exit code, stderr)."""
    result = run_here(*args)
    return result.returncode, result.stderr


def train(capsys, data, out, weights, *extra, size=32) -> tuple[int, str]:
    return cli(capsys, "train-member", "cnn", "--data", data, "--out", out, "--weights", weights, "--epochs", 1,
               "--batch-size", 32, "--image-size", size, "--task", "expr", *extra)  # fmt: skip


def run_network(run) -> CnnNet:
    """The network train-member built for the run: its config.json's backbone, input convention and weights."""
    cfg = Run.open(run).config
    return CnnNet(cfg, get_edition(cfg.edition)).eval()


def images(size: int, n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def close(ours: torch.Tensor, reference: torch.Tensor) -> None:
    """Within 1e-4 of the output's scale (caffe inputs are 0-255 pixels, so outputs are not of order one)."""
    scale = float(reference.abs().max())
    assert scale > 0
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4 * scale)


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """One file of each layout (random weights), written once, with what the references need."""
    folder, rng, made = tmp_path_factory.mktemp("face_weights"), np.random.default_rng(0), {}

    def get(kind):
        if kind not in made:
            made[kind] = MAKERS[kind](folder, rng)
        return made[kind]

    return get


def _vgg_face(folder, rng):
    path = folder / "VGG_Face_torch.pth"
    return path, pf.write_vgg_face_torch(path, rng)


def _cydonia(folder, rng):
    path = folder / "resnet50_ft_weight.pkl"
    path.write_bytes(pf.py2_pickle(pf.cydonia999_arrays(rng)))
    net = pf.Cydonia999ResNet50()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in pf.read_py2_pickle(path).items()}, strict=False)
    return path, net.eval()


def _dag(folder, rng):
    path, arrays = folder / "resnet50_ft_dag.pth", pf.resnet_caffe_arrays(rng)
    state = {k: torch.from_numpy(v) for k, v in arrays.items()}
    torch.save(state, path)
    return path, state


def _keras(model_name):
    def make(folder, rng):
        import keras

        keras.utils.set_random_seed(0)
        if model_name == "vgg16":
            model, classifier, width = pf.keras_vgg16(224), "fc8", 4096
        else:
            model, classifier, width = pf.keras_resnet50(64, se=model_name == "senet50"), "classifier", 2048
        layers = pf.keras_layers_with_random_weights(model, rng, pf.keras_real_name)
        head = [
            (f"{classifier}/kernel:0", pf.he(rng, (width, 8631), width)),
            (f"{classifier}/bias:0", np.zeros(8631, np.float32)),
        ]
        path = folder / f"rcmalli_vggface_tf_{model_name}.h5"
        pf.write_keras2_weights(path, layers + [(classifier, head)])
        return path, model

    return make


def _hsemotion(folder, rng):
    import timm

    net = timm.create_model("tf_efficientnet_b0", num_classes=8631).eval()
    path = folder / "state_vggface2_enet0_new.pt"
    torch.save(net.state_dict(), path)
    return path, net


MAKERS = {"vgg_face": _vgg_face, "cydonia": _cydonia, "dag": _dag, "hsemotion": _hsemotion}
MAKERS |= {f"keras_{m}": _keras(m) for m in ("vgg16", "resnet50", "senet50")}


# --- each row of the table: loaded through train-member, checked against the public definition -------------


def test_vgg_face_torch_matches_the_caffe_vgg_sequential(files, tiny_dataset, tmp_path, capsys):
    path, reference = files("vgg_face")
    code, err = train(capsys, tiny_dataset[0], tmp_path / "run", path)
    assert code == 0, err
    assert (
        "VGG-Face" in err
        and "backbone vggface_vgg16: 30 of 30 tensors placed" in err
        and "(2622 classes) dropped" in err
    )
    assert json.loads((tmp_path / "run" / "config.json").read_text())["input"]["channels"] == "BGR"
    x = images(224, n=1)
    with torch.no_grad():
        close(run_network(tmp_path / "run").features(x), pf.vgg_face_reference(reference, x))


def test_cydonia999_python2_pickle_matches_its_resnet50(files, tiny_dataset, tmp_path, capsys):
    path, reference = files("cydonia")
    code, err = train(capsys, tiny_dataset[0], tmp_path / "run", path)
    assert code == 0, err
    assert "cydonia999" in err and "265 of 265 tensors placed" in err and "classifier fc (8631 classes) dropped" in err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["backbone"] == "vggface2_resnet50" and config["input"]["mean"] == list(pf.VGGFACE2_BGR)
    x = images(64)
    with torch.no_grad():
        close(run_network(tmp_path / "run").features(x), reference(pf.caffe_input(x, pf.VGGFACE2_BGR, bgr=True)))


def test_albanie_dag_matches_its_functional_forward(files, tiny_dataset, tmp_path, capsys):
    path, state = files("dag")
    code, err = train(capsys, tiny_dataset[0], tmp_path / "run", path)
    assert code == 0, err
    assert "resnet50_ft_dag" in err and "classifier classifier (8631 classes) dropped" in err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["input"]["channels"] == "RGB"
    x = images(64)
    with torch.no_grad():
        close(run_network(tmp_path / "run").features(x), pf.dag_reference(state, x))


@pytest.mark.parametrize(("model", "size", "mean"), [("vgg16", 224, pf.VGGFACE1_BGR), ("resnet50", 64, pf.VGGFACE2_BGR),
                                                      ("senet50", 64, pf.VGGFACE2_BGR)])  # fmt: skip
def test_keras_vggface_weights_match_keras_itself(files, tiny_dataset, tmp_path, capsys, model, size, mean):
    path, keras_model = files(f"keras_{model}")
    code, err = train(capsys, tiny_dataset[0], tmp_path / "run", path)
    assert code == 0, err
    assert f"keras-vggface weights (rcmalli/keras-vggface) for backbone keras_vggface_{model}" in err
    assert "(8631 classes) dropped" in err or "(8631 classes)" not in err
    x = images(size, n=1)
    with torch.no_grad():
        close(run_network(tmp_path / "run").features(x), pf.keras_forward(keras_model, x, mean))


def test_hsemotion_state_dict_picks_its_efficientnet_and_imagenet_input(files, tiny_dataset, tmp_path, capsys):
    path, reference = files("hsemotion")
    code, err = train(capsys, tiny_dataset[0], tmp_path / "run", path)
    assert code == 0, err
    assert "backbone tf_efficientnet_b0" in err and "classifier classifier (8631 classes) dropped" in err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["input"]["mean"] == [0.485, 0.456, 0.406] and config["input"]["size"] == 224
    x = images(64)
    with torch.no_grad():
        imagenet = ((x * 0.5 + 0.5) - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
            [0.229, 0.224, 0.225]
        ).view(1, 3, 1, 1)
        close(
            run_network(tmp_path / "run").features(x),
            reference.forward_head(reference.forward_features(imagenet), pre_logits=True),
        )


def test_safetensors_load_directly(files, tmp_path):
    from safetensors.torch import save_file

    path, state = files("dag")
    save_file(state, tmp_path / "resnet50_ft_dag.safetensors")
    cfg, said = prepare(CnnConfig(weights=str(tmp_path / "resnet50_ft_dag.safetensors")))
    assert cfg.backbone == "vggface2_resnet50" and "265 of 265 tensors placed" in said
    model, convention = pretrained_backbone(cfg)
    assert convention["channels"] == "RGB"
    torch.testing.assert_close(model.state_dict()["conv5_3_1x1_increase.weight"], state["conv5_3_1x1_increase.weight"])


# --- files that do not fit are one-line errors --------------------------------------------------------------


def one_line_error(capsys, tmp_path, weights, *extra) -> str:
    code, err = train(capsys, tmp_path / "no_data", tmp_path / "run", weights, *extra)
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()  # refused before any output
    return err


@pytest.mark.parametrize("kind", ["vgg_face", "cydonia", "dag", "keras_resnet50"])
def test_a_face_file_given_to_resnet18_names_the_backbone_it_was_made_for(files, tmp_path, capsys, kind):
    err = one_line_error(capsys, tmp_path, files(kind)[0], "--backbone", "resnet18")
    assert "made for backbone" in err and "not resnet18" in err


def test_a_timm_file_of_another_network_names_the_first_missing_tensor(files, tmp_path, capsys):
    import timm

    torch.save(timm.create_model("resnet50", num_classes=0).state_dict(), tmp_path / "resnet50.pth")
    err = one_line_error(capsys, tmp_path, tmp_path / "resnet50.pth", "--backbone", "vgg16")
    assert "fills 0 of the 30 tensors of backbone vgg16; first missing: features.0.weight" in err
    err = one_line_error(capsys, tmp_path, files("hsemotion")[0], "--backbone", "resnet18")
    assert "tensor 'bn1.weight' is 32 in the file but 64 in backbone resnet18" in err


def test_a_file_filling_part_of_the_backbone_is_refused(tmp_path, capsys):
    import timm

    state = timm.create_model("resnet18", num_classes=0).state_dict()
    torch.save({k: v for k, v in state.items() if not k.startswith("layer4.")}, tmp_path / "partial.pth")
    err = one_line_error(capsys, tmp_path, tmp_path / "partial.pth", "--backbone", "resnet18")
    assert "fills 75 of the 100 tensors of backbone resnet18; first missing: layer4.0.conv1.weight" in err


def test_right_format_other_architecture_names_the_tensor_and_both_shapes(tmp_path, capsys):
    import timm

    resnet34 = timm.create_model("resnet34", num_classes=0).state_dict()  # torchvision names, basic blocks
    arrays = {k: v.numpy() for k, v in resnet34.items() if not k.endswith("num_batches_tracked")}
    (tmp_path / "resnet34_weight.pkl").write_bytes(pf.py2_pickle(arrays))
    err = one_line_error(capsys, tmp_path, tmp_path / "resnet34_weight.pkl")
    assert "'layer1.0.conv1.weight' (conv2_1_1x1_reduce.weight) is 64x64x3x3 in the file but 64x64x1x1" in err


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"conv1.weight": Payload()}, protocol=2))
    err = one_line_error(capsys, tmp_path, tmp_path / "evil.pkl")
    assert "the pickle asks for global posix.system; refused" in err
    torch.save({"conv1.weight": Payload()}, tmp_path / "evil.pth")
    err = one_line_error(capsys, tmp_path, tmp_path / "evil.pth")
    assert "posix.system" in err and "refused" in err
    assert not marker.exists()


def test_a_whole_pickled_model_is_refused_with_the_conversion_recipe(tmp_path, capsys):
    import timm

    torch.save(timm.create_model("test_efficientnet"), tmp_path / "enet_b0_8_best_afew.pt")  # as HSEmotion ships
    err = one_line_error(capsys, tmp_path, tmp_path / "enet_b0_8_best_afew.pt")
    assert "timm.models.efficientnet.EfficientNet" in err
    assert "torch.save(m.state_dict(), 'enet_b0_8_best_afew_state.pt')" in err


def test_a_wrong_weights_format_is_refused(files, tmp_path, capsys):
    err = one_line_error(capsys, tmp_path, files("dag")[0], "--weights-format", "keras-vggface")
    assert "is a torch file; --weights-format keras-vggface is not" in err
    err = one_line_error(capsys, tmp_path, files("dag")[0], "--weights-format", "nonsense")
    assert "unknown weights format 'nonsense'" in err


def test_the_input_convention_is_applied_by_the_network(files):
    path, _ = files("dag")
    with pytest.raises(DataError, match="weights file not found"):
        pretrained_backbone(CnnConfig(weights=str(path) + ".missing"))
    cfg, _ = prepare(CnnConfig(weights=str(path), tasks=("expr",)))
    net = CnnNet(cfg, get_edition(2025)).eval()
    grey = torch.zeros(1, 3, 8, 8)  # our normalisation's mid-grey: 127.5 in 0-255 pixels
    expected = 127.5 - torch.tensor(pf.VGGFACE2_RGB).view(1, 3, 1, 1)
    torch.testing.assert_close(net.adapt(grey), expected.expand(1, 3, 8, 8))


def test_keras_vggface_notop_weights_pick_the_conv_only_vgg(tmp_path):
    rng, layers, c = np.random.default_rng(1), [], 3
    for b, i, w in pf.VGG_CONVS:
        kernel, bias = pf.he(rng, (3, 3, c, w), 9 * c), rng.normal(0, 0.01, w).astype(np.float32)
        layers.append((f"conv{b}_{i}", [(f"conv{b}_{i}/kernel:0", kernel), (f"conv{b}_{i}/bias:0", bias)]))
        c = w
    pf.write_keras2_weights(tmp_path / "rcmalli_vggface_tf_notop_vgg16.h5", layers)
    cfg, said = prepare(CnnConfig(weights=str(tmp_path / "rcmalli_vggface_tf_notop_vgg16.h5")))
    assert cfg.backbone == "keras_vggface_vgg16_notop" and "26 of 26 tensors placed" in said and "dropped" not in said
    model, _ = pretrained_backbone(cfg)
    torch.testing.assert_close(model.conv1_1.weight, torch.from_numpy(layers[0][1][0][1]).permute(3, 2, 0, 1))
    assert model.num_features == 512


def test_a_committee_backbone_takes_its_weights_files_convention(files, tmp_path):
    from members.committee import backbone_config
    from members.configs import CommitteeConfig

    (tmp_path / "vggface2_resnet50.pth").write_bytes(files("dag")[0].read_bytes())
    cfg = CommitteeConfig(backbones=("vggface2_resnet50", "test_resnet"), weights_dir=str(tmp_path))
    face, plain = backbone_config(cfg, "vggface2_resnet50"), backbone_config(cfg, "test_resnet")
    assert face.input["mean"] == list(pf.VGGFACE2_RGB) and face.weights.endswith("vggface2_resnet50.pth")
    assert plain.weights is None and plain.input is None


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_face_backbone_has_a_convention_and_pooled_features(name):
    from members.pretrained.formats import BACKBONE_CONVENTIONS

    with torch.device("meta"):
        model = build_backbone(name)
        out = model(torch.zeros(2, 3, 64, 64))
    assert tuple(out.shape) == (2, model.num_features) and name in BACKBONE_CONVENTIONS
