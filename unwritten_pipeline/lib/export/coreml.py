"""Core ML exports (coremltools). Prediction and on-device updates need Apple hardware; here the
packages are verified by reloading their specs and by running their (decompressed) weights in
PyTorch against the original model.

- the PersonalityModel backbone as an ML Program (.mlpackage): fp16 for iOS 17 and a 4-bit
  k-means palettized variant (iOS 17);
- the 512→325 head as an updatable NeuralNetwork (.mlmodel): inner product + sigmoid, MSE loss,
  Adam or SGD — ML Programs cannot be updatable;
- the merged multi-task model as an ML Program.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unwritten_pipeline.lib.multitask.model import activate
from unwritten_pipeline.lib.multitask.tasks import heads_named
from unwritten_pipeline.lib.storage.files import atomic_output


def _save_package(mlmodel, out_path: Path) -> Path:
    with atomic_output(out_path) as tmp:
        mlmodel.save(str(tmp))
    return out_path


class _Backbone(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.m = model

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.m.backbone(embedding)


def _convert(module: nn.Module, example: tuple, inputs: list, outputs: list, target):
    import coremltools as ct

    torch.backends.mha.set_fastpath_enabled(False)  # the fused MHA kernel does not trace
    with torch.no_grad():
        traced = torch.jit.trace(module.eval(), example)
    return ct.convert(
        traced,
        inputs=inputs,
        outputs=outputs,
        convert_to="mlprogram",
        minimum_deployment_target=target,
        compute_precision=ct.precision.FLOAT16,
    )


def personality_backbone(
    model: nn.Module, input_dim: int, out_dir: Path, metadata: dict[str, str]
) -> dict[str, Path]:
    """fp16 and 4-bit palettized ML Programs of the frozen backbone (embedding → 512 features)."""
    import coremltools as ct
    from coremltools.optimize.coreml import (
        OpPalettizerConfig,
        OptimizationConfig,
        palettize_weights,
    )

    mlmodel = _convert(
        _Backbone(model),
        (torch.zeros(1, input_dim),),
        [ct.TensorType(name="embedding", shape=(1, input_dim))],
        [ct.TensorType(name="features")],
        ct.target.iOS17,
    )
    mlmodel.short_description = "Unwritten PersonalityModel backbone (frozen on device)"
    mlmodel.user_defined_metadata.update(metadata)
    fp16 = _save_package(mlmodel, out_dir / "personality_backbone_fp16.mlpackage")
    palettized = palettize_weights(
        mlmodel, OptimizationConfig(global_config=OpPalettizerConfig(mode="kmeans", nbits=4))
    )
    palettized.user_defined_metadata.update(metadata)
    four_bit = _save_package(palettized, out_dir / "personality_backbone_4bit.mlpackage")
    return {"fp16": fp16, "4bit": four_bit}


def updatable_head(
    model: nn.Module,
    out_path: Path,
    *,
    optimizer: str = "adam",
    lr: float = 1e-3,
    epochs: int = 10,
    batch: int = 8,
    labels: list[str] | None = None,
) -> Path:
    """512 features → 325 sigmoid probabilities, updatable on device (MSE loss)."""
    import coremltools as ct
    from coremltools.models import datatypes
    from coremltools.models.neural_network import AdamParams, NeuralNetworkBuilder, SgdParams

    weight = model.token_projection.weight.detach().numpy().astype(np.float32)
    bias = model.token_bias.detach().numpy().astype(np.float32)
    hidden, tokens = weight.shape[1], weight.shape[0]
    builder = NeuralNetworkBuilder(
        [("features", datatypes.Array(hidden))],
        [("probabilities", datatypes.Array(tokens))],
        disable_rank5_shape_mapping=True,
    )
    builder.add_inner_product(
        "token_head",
        W=weight,
        b=bias,
        input_channels=hidden,
        output_channels=tokens,
        has_bias=True,
        input_name="features",
        output_name="logits",
    )
    builder.add_activation("sigmoid", "SIGMOID", "logits", "probabilities")
    builder.make_updatable(["token_head"])
    builder.set_mean_squared_error_loss(
        name="mse", input_feature=("probabilities", datatypes.Array(tokens))
    )
    if optimizer == "adam":
        builder.set_adam_optimizer(AdamParams(lr=lr, batch=batch))
    elif optimizer == "sgd":
        builder.set_sgd_optimizer(SgdParams(lr=lr, batch=batch))
    else:
        raise ValueError(f"optimizer {optimizer!r}: use adam or sgd")
    builder.set_epochs(epochs)
    spec = builder.spec
    spec.description.metadata.shortDescription = "Unwritten personality head (updatable on device)"
    if labels:
        spec.description.metadata.userDefined["token_labels"] = json.dumps(labels)
    with atomic_output(out_path) as tmp:
        ct.utils.save_spec(spec, str(tmp))
    return out_path


class _MultiTaskTuple(nn.Module):
    """Core ML wants a tuple (outputs in HEADS order), and the additive attention mask built here:
    transformers' own mask helpers use ops coremltools cannot convert."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, input_ids, attention_mask):
        encoder = self.module.encoder
        hidden = encoder.embeddings(input_ids=input_ids.long())
        additive = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * -1e4
        hidden = encoder.encoder(hidden, attention_mask=additive).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return tuple(
            activate(h.name, self.module.heads[h.name](pooled))
            for h in heads_named(self.module.heads)
        )


def text_inputs(max_length: int) -> tuple[tuple, list]:
    """(example tensors to trace with, Core ML input types) of a text-in multi-task model."""
    import coremltools as ct

    example = (
        torch.zeros(1, max_length, dtype=torch.int32),
        torch.ones(1, max_length, dtype=torch.int32),
    )
    return example, [
        ct.TensorType(name="input_ids", shape=(1, max_length), dtype=np.int32),
        ct.TensorType(name="attention_mask", shape=(1, max_length), dtype=np.int32),
    ]


def multitask_program(
    module: nn.Module, max_length: int, out_path: Path, metadata: dict[str, str]
) -> Path:
    import coremltools as ct

    mlmodel = _convert(
        _MultiTaskTuple(module),
        *text_inputs(max_length),
        [ct.TensorType(name=h.name) for h in heads_named(module.heads)],
        ct.target.iOS17,
    )
    mlmodel.short_description = f"Unwritten multi-task model ({len(module.heads)} heads)"
    mlmodel.user_defined_metadata.update(metadata)
    return _save_package(mlmodel, out_path)


def describe(path: Path) -> dict:
    """Inputs, outputs, metadata and updatability of a .mlpackage / .mlmodel (the seed's
    inspect_mlpackage)."""
    import coremltools as ct

    if not path.exists():
        raise FileNotFoundError(f"{path}: Core ML package is missing")
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()

    def feature(f):
        return {"name": f.name, "type": f.type.WhichOneof("Type")}

    info = {
        "inputs": [feature(f) for f in spec.description.input],
        "outputs": [feature(f) for f in spec.description.output],
        "metadata": dict(spec.description.metadata.userDefined),
        "specification_version": spec.specificationVersion,
        "is_updatable": spec.isUpdatable,
        "type": spec.WhichOneof("Type"),
    }
    if spec.WhichOneof("Type") == "neuralNetwork":
        info["updatable_layers"] = [
            layer.name for layer in spec.neuralNetwork.layers if layer.isUpdatable
        ]
        info["training_inputs"] = [f.name for f in spec.description.trainingInput]
    return info


def package_weights(path: Path) -> dict[str, np.ndarray]:
    """The package's weights, decompressed, keyed by the PyTorch parameter name they came from."""
    import coremltools as ct
    from coremltools.optimize.coreml import decompress_weights

    program = decompress_weights(ct.models.MLModel(str(path), skip_model_load=True))._mil_program
    weights = {}
    for op in program.functions["main"].operations:
        if (
            op.op_type == "const"
            and op.outputs[0].val is not None
            and np.ndim(op.outputs[0].val) >= 1
        ):
            name = op.name.removesuffix("_palettized").removesuffix("_to_fp16")
            weights[name] = np.asarray(op.outputs[0].val, dtype=np.float32)
    return weights


def backbone_weight_parity(model: nn.Module, package: Path, embeddings: np.ndarray) -> dict:
    """Load the package's decompressed weights into a copy of the PyTorch model; compare outputs."""
    weights = package_weights(package)
    clone = copy.deepcopy(model).eval()
    replaced = 0
    state = clone.state_dict()
    for name in state:
        key = "m_" + name.replace(".", "_")
        if key in weights and weights[key].shape == tuple(state[name].shape):
            state[name] = torch.from_numpy(weights[key])
            replaced += 1
    clone.load_state_dict(state)
    with torch.no_grad():
        x = torch.from_numpy(embeddings)
        original, decoded = model.eval().backbone(x), clone.backbone(x)
    cos = nn.functional.cosine_similarity(original, decoded, dim=-1)
    return {
        "weights_replaced": replaced,
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
    }


def coreml_interface(path: Path, target: str) -> dict:
    """The model_config.json entry of a Core ML file: type, inputs, outputs, updatability."""
    spec = describe(path)
    return {
        "type": spec["type"],
        "minimum_deployment_target": target,
        "inputs": spec["inputs"],
        "outputs": spec["outputs"],
        "is_updatable": spec["is_updatable"],
        **({"updatable_layers": spec["updatable_layers"]} if spec["is_updatable"] else {}),
        **({"training_inputs": spec["training_inputs"]} if spec.get("training_inputs") else {}),
    }
