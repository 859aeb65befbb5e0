"""Forward kinematics of MuJoCo body trees in torch: the whole-body centre of mass from qpos.

Humanoid-v5 rewards the forward velocity of its centre of mass, which no observation holds; it is a
function of the whole qpos, and :class:`CenterOfMass` computes it as ``mj_kinematics`` does, batched
and differentiable (the known reward of ``mujoco_fns``). Accuracy and timings: ``docs/mujoco_fns.md``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightning_mbrl.errors import ConfigError


def _quat_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrix ``[..., 3, 3]`` of the unit quaternion ``q [..., 4]`` (w, x, y, z), MuJoCo's convention."""
    w, x, y, z = q.unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def _skew(v: Tensor) -> Tensor:
    """``[..., 3] -> [..., 3, 3]``: the matrix ``K`` with ``K u = v x u``."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).unflatten(-1, (3, 3))


class CenterOfMass:
    """Whole-body centre of mass ``qpos [*B, nq] -> [*B, 3]`` by forward kinematics in torch.

    Follows MuJoCo's kinematics for trees of free, slide and hinge joints: a body's frame is its
    parent's composed with its fixed offset, then with each joint's motion (a hinge turns about its
    anchor by ``q - qpos0``; a free joint sets position and normalised quaternion directly); the
    centre of mass is the mass-weighted mean of the bodies' inertial frames (``xipos``).

    Frames are rotation matrices. Every hinge's rotation (Rodrigues: ``I + sin(t) K + (1 - cos(t)) K^2``
    for the unit axis' cross-product matrix ``K``) and the shift it gives its body's origin,
    ``(I - R_h) p_anchor``, are computed for all hinges at once, so the walk down the tree is two small
    matmuls per body and per hinge: about 150 tensor ops for Humanoid, whatever the batch (this is
    the known reward's hot path in MBSAC and BOOTS).
    """

    _FREE, _SLIDE, _HINGE = 0, 2, 3  # mjtJoint

    def __init__(self, model: Any) -> None:  # a mujoco.MjModel
        def geometry(array: Any) -> Tensor:
            return torch.tensor(array.tolist(), dtype=torch.float64)

        self.parent = [int(p) for p in model.body_parentid]
        if any(p >= body for body, p in enumerate(self.parent) if body > 0):
            raise ConfigError("CenterOfMass needs every body after its parent (MuJoCo's order)")
        jnt_pos, jnt_axis = geometry(model.jnt_pos), geometry(model.jnt_axis)
        # per body: its joints as (kind, qpos address, index): hinge index into the hinge arrays, or joint id
        self.joints: list[list[tuple[int, int, int]]] = []
        hinges: list[int] = []
        for body in range(model.nbody):
            first, count = int(model.body_jntadr[body]), int(model.body_jntnum[body])
            kinds = []
            for j in range(first, first + max(count, 0)):
                kind, adr = int(model.jnt_type[j]), int(model.jnt_qposadr[j])
                if kind not in (self._FREE, self._SLIDE, self._HINGE):
                    raise ConfigError("CenterOfMass supports free, slide and hinge joints only (no ball joints)")
                if kind == self._HINGE:
                    kinds.append((kind, adr, len(hinges)))
                    hinges.append(j)
                else:
                    kinds.append((kind, adr, j))
            self.joints.append(kinds)
        qpos0 = geometry(model.qpos0)
        hinge_ids = torch.tensor(hinges, dtype=torch.long)
        skew = _skew(jnt_axis[hinge_ids])                                            # [H, 3, 3]
        self.consts = {  # float64 masters; __call__ uses them in the input's dtype and device
            "body_rot": _quat_to_matrix(geometry(model.body_quat)),                  # [nbody, 3, 3]
            "body_pos": geometry(model.body_pos),
            "body_ipos": geometry(model.body_ipos)[..., None],                       # [nbody, 3, 1]
            "mass": geometry(model.body_mass)[1:, None] / float(sum(model.body_mass)),
            "slide_axis": jnt_axis,
            "qpos0": qpos0,
            "hinge_qpos0": qpos0[torch.tensor([int(model.jnt_qposadr[j]) for j in hinges], dtype=torch.long)],
            "hinge_K": skew,
            "hinge_K2": skew @ skew,
            "hinge_K_anchor": (skew @ jnt_pos[hinge_ids][..., None]).squeeze(-1),    # [H, 3]
            "hinge_K2_anchor": (skew @ skew @ jnt_pos[hinge_ids][..., None]).squeeze(-1),
        }
        self.hinge_adr = torch.tensor([int(model.jnt_qposadr[j]) for j in hinges], dtype=torch.long)
        self._cast: dict[tuple[torch.dtype, torch.device], dict[str, Tensor]] = {}

    def constants(self, like: Tensor) -> dict[str, Tensor]:
        key = (like.dtype, like.device)
        if key not in self._cast:
            self._cast[key] = {name: t.to(like) for name, t in self.consts.items()}
            self._cast[key]["hinge_adr"] = self.hinge_adr.to(like.device)
        return self._cast[key]

    def __call__(self, qpos: Tensor) -> Tensor:
        c = self.constants(qpos)
        angle = (qpos.index_select(-1, c["hinge_adr"]) - c["hinge_qpos0"])[..., None]   # [*B, H, 1]
        sin, one_minus_cos = angle.sin(), 1.0 - angle.cos()
        eye = torch.eye(3, dtype=qpos.dtype, device=qpos.device)
        hinge_rot = (eye + sin[..., None] * c["hinge_K"] + one_minus_cos[..., None] * c["hinge_K2"]).unbind(-3)
        # a hinge moves its body's origin p to anchor + R_h (p - anchor); in the body frame that is
        # the shift (I - R_h) anchor = -(sin K + (1 - cos) K^2) anchor
        hinge_shift = (-(sin * c["hinge_K_anchor"] + one_minus_cos * c["hinge_K2_anchor"]))[..., None].unbind(-3)
        batch = qpos.shape[:-1]
        rot = [eye.expand(*batch, 3, 3)]
        pos = [qpos.new_zeros(*batch, 3, 1)]
        body_rot, body_pos = c["body_rot"], c["body_pos"][..., None]
        for body in range(1, len(self.parent)):
            parent = self.parent[body]
            r = rot[parent] @ body_rot[body]
            p = pos[parent] + rot[parent] @ body_pos[body]
            for kind, adr, index in self.joints[body]:
                if kind == self._FREE:
                    quat = qpos[..., adr + 3:adr + 7]
                    p, r = qpos[..., adr:adr + 3, None], _quat_to_matrix(quat / quat.norm(dim=-1, keepdim=True))
                elif kind == self._SLIDE:
                    p = p + (r @ c["slide_axis"][index][..., None]) * (qpos[..., adr, None, None] - c["qpos0"][adr])
                else:
                    p = p + r @ hinge_shift[index]
                    r = r @ hinge_rot[index]
            rot.append(r)
            pos.append(p)
        inertial = torch.stack(pos[1:], dim=-3) + torch.stack(rot[1:], dim=-3) @ c["body_ipos"][1:]   # [*B, n, 3, 1]
        return (c["mass"] * inertial.squeeze(-1)).sum(dim=-2)


__all__ = ["CenterOfMass"]
