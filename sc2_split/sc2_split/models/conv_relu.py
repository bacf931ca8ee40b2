"""A convolution with its bias, a residual added after it, and the ReLU after that, as one cuDNN
kernel on a CUDA device.

With its batch norms folded (Tail.fold_batch_norms) a ResNet's convolution has a bias, and torch
adds that bias as a pass of its own over the output, then adds the residual and applies the ReLU in
two more: memory-bound passes over every activation, which took 18 and 3.6 of a ResNet-50 tail's
76 ms of kernel time per batch of 32 (H200). cuDNN's fused convolutions (aten's
cudnn_convolution_relu and cudnn_convolution_add_relu) apply all three in the convolution's
epilogue, in float32 before the output's rounding.
"""

import operator

import torch
from torch import Tensor, fx, nn
from torch.nn import functional as F  # noqa: N812  (the torch idiom)

_RELUS = (F.relu, torch.relu)


class ConvReLU(nn.Module):
    """relu(conv(x) + residual), as one cuDNN kernel on CUDA tensors; elsewhere operation by operation."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        conv = self.conv
        if not x.is_cuda:
            y = conv(x)
            return F.relu(y if residual is None else y + residual)
        # autocast does not know cuDNN's fused operations: its float16 casts, made here.
        dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else x.dtype
        args = (conv.stride, conv.padding, conv.dilation, conv.groups)
        weight, bias = conv.weight.to(dtype), conv.bias.to(dtype) if conv.bias is not None else None
        if residual is None:
            return torch.ops.aten.cudnn_convolution_relu(x.to(dtype), weight, bias, *args)
        return torch.ops.aten.cudnn_convolution_add_relu(
            x.to(dtype), weight, residual.to(dtype), 1.0, bias, *args
        )


def fuse_conv_relus(module: fx.GraphModule) -> int:
    """Rewrites `module` in place: each convolution whose only use is a ReLU, or an addition whose
    only use is a ReLU, becomes a ConvReLU. Returns the number rewritten."""
    graph, fused = module.graph, 0
    for node in list(graph.nodes):
        conv = _conv(module, node)
        if conv is None or len(node.users) != 1:
            continue
        (user,) = node.users
        if _is_relu(module, user):
            relu, residual, at = user, None, user
        elif user.op == "call_function" and user.target in (operator.add, torch.add) and len(user.args) == 2:
            (relu,) = user.users if len(user.users) == 1 else (None,)
            residual = user.args[1] if user.args[0] is node else user.args[0]
            if relu is None or not _is_relu(module, relu) or user.kwargs or residual is node:
                continue
            at = relu
        else:
            continue
        module.add_submodule(str(node.target), ConvReLU(conv))
        args = (node.args[0],) if residual is None else (node.args[0], residual)
        with graph.inserting_before(at):  # after the residual, wherever it was computed
            replacement = graph.call_module(str(node.target), args)
        relu.replace_all_uses_with(replacement)
        for dead in (relu, user, node) if residual is not None else (relu, node):
            graph.erase_node(dead)
        fused += 1
    graph.lint()
    module.recompile()
    return fused


def _conv(module: fx.GraphModule, node: fx.Node) -> nn.Conv2d | None:
    """The plain 2-d convolution that `node` calls (zero padding given as numbers), if it does."""
    if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
        return None
    conv = module.get_submodule(str(node.target))
    return conv if is_plain_conv(conv) else None


def is_plain_conv(module: nn.Module) -> bool:
    """Whether `module` is a plain 2-d convolution (zero padding given as numbers), which the fused
    and the bias kernels take as F.conv2d's arguments."""
    return (
        type(module) is nn.Conv2d and module.padding_mode == "zeros" and not isinstance(module.padding, str)
    )


def _is_relu(module: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return type(module.get_submodule(str(node.target))) is nn.ReLU
    return node.op == "call_function" and node.target in _RELUS and len(node.args) == 1 and not node.kwargs
