"""torch.distributed as torchrun starts it: one process per GPU (NCCL) or per CPU worker (gloo).

Without torchrun's environment the run is one process and no process group is made, so
`python -m sc2_split.training` and `torchrun --nproc-per-node 1 -m sc2_split.training` train alike.
"""

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

# Rank 0 evaluates while the others wait; COCO-sized evaluations take minutes.
_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    device: torch.device

    @property
    def main(self) -> bool:
        """The process that logs, shows progress, evaluates and writes files."""
        return self.rank == 0

    def wrap(self, module: nn.Module) -> nn.Module:
        """DDP over the module's trainable parameters when there are several processes."""
        if self.size == 1:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)

    def agree(self, value: float) -> float:
        """Rank 0's value on every rank: the clock's reading, so all ranks stop at the same step
        and use the same learning rate."""
        if self.size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(tensor, src=0)
        return float(tensor.item())

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each figure averaged over the ranks (every rank passes the same keys)."""
        if self.size == 1 or not values:
            return values
        keys = sorted(values)
        tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return dict(zip(keys, (tensor / self.size).tolist(), strict=True))

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier(device_ids=[self.device.index] if self.device.type == "cuda" else None)


def init_world(cpu: bool = False) -> World:
    """This process's place: from torchrun's RANK/WORLD_SIZE/LOCAL_RANK, else a world of one."""
    cuda = torch.cuda.is_available() and not cpu
    if "RANK" not in os.environ:
        return World(0, 1, torch.device("cuda" if cuda else "cpu"))
    local_rank = int(os.environ["LOCAL_RANK"])
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=_TIMEOUT)
    return World(dist.get_rank(), dist.get_world_size(), device)


def close_world() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def unwrap(module: nn.Module) -> Any:
    """The module inside DDP, for saving and evaluating."""
    return module.module if isinstance(module, DistributedDataParallel) else module
