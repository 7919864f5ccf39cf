"""Triton attention kernels over a BalanceKV compressed cache.

--balancekv-triton-weighted-attention rewrites a Triton kernel's attention
loops so that the log-weights of the compressed cache are added to its
logits; the kernel then takes its own arguments followed by new ones: `LW`
(the [.., kept keys] f32 log-weights) and, for kernels that address their
keys through stride arguments, one `lw_<stride>` per such stride (the
log-weights' stride for the same dim), and for kernels whose one length
bounds both queries and keys, `<length>_kv` (the compressed cache's
length). Three ways in, each giving a
`WeightedKernel` launched like a Triton kernel with the new arguments last
(positionally or by name):

  rewrite_ttir(text)                      the pass, in-process (needs
                                          libbalancekv_capi: MLIR)
  compile_ttir(path_or_rewrite)           Triton 3.6 compiles a .ttir
  compile_jit(fn, signature, constexprs)  an unmodified @triton.jit kernel,
                                          rewritten at Triton's ttir stage:
      - by the pass itself, through Triton's stage hook
        (`triton.knobs.runtime.add_stages_inspection_hook`), or
      - with `ttir=` a TTIR rewritten beforehand (Triton's `ir_override`
        option): no MLIR on the machine that compiles and launches.

    k = compile_jit(attn_fwd, {"Q": "*fp16", ...}, {"BLOCK_M": 128, ...})
    k[grid](*kernel_args, log_weights)

TritonProgram runs what --balancekv-convert-to-triton makes of balancekv's
own ops (compress, weighted_attention): kernels + launch plans.
"""
import os
import re
import tempfile

import triton
from triton.compiler import ASTSource

from . import opt

PIPELINE = "builtin.module(balancekv-triton-weighted-attention{remarks=true})"
_TYPES = {"!tt.ptr<f32>": "*fp32", "i32": "i32", "i64": "i64"}


class Rewrite:
    """A rewritten kernel: its TTIR (generic form, with locations), the names
    and Triton types of the arguments the rewrite appended, or the pass's
    remark when it left the kernel alone (`new_args` then empty)."""

    def __init__(self, text):
        self.text = text
        remark = re.search(r"remark: balancekv-triton-weighted-attention: (.*)", text)
        self.remark = remark.group(1) if remark else None
        self.new_args = [] if self.remark else appended_args(text)


def appended_args(text):
    """(name, Triton type) of the arguments the rewrite appended: the
    kernel's trailing arguments named LW / lw_* / *_kv (the key length of a
    kernel whose one length also bounds its queries); read off name
    locations; a kernel's own `LW` earlier in its list makes ours `LW_1`."""
    aliases = dict(re.findall(r'^(#loc\d*) = loc\("([^"]+)"', text, re.M))
    # The custom form's signature, or the generic form's entry block.
    block = (re.search(r"tt\.func public @\w+\((.*)\)\s*(?:attributes|\{)", text) or
             re.search(r'"tt\.func"\(\).*?\^bb0\((.*?)\):', text, re.S))
    if not block:
        return []
    args = []
    for ty, loc in re.findall(r"%\w+: ([^,(){}]+?)\s*(?:\{[^}]*\}\s*)?loc\((\S+?)\)(?:,|$)",
                              block.group(1)):
        name = aliases.get(loc, loc.split("(")[0].strip('"'))
        args.append((name, _TYPES.get(ty.strip(), ty.strip())))
    appended = []
    for name, ty in reversed(args):
        if not (name.startswith("LW") or name.startswith("lw_") or name.endswith("_kv")):
            break
        appended.insert(0, (name, ty))
    return appended


def rewrite_ttir(text):
    """--balancekv-triton-weighted-attention on TTIR text, in-process."""
    return Rewrite(opt(text, PIPELINE, generic=True, debuginfo=True))


class WeightedKernel:
    """A compiled Triton kernel that attends over a compressed cache:
    `kernel[grid](*args, *new_args)`, or the new ones by name."""

    def __init__(self, compiled, new_args):
        self.compiled = compiled
        self.new_args = list(new_args)

    @property
    def new_arg_names(self):
        return [name for name, _ in self.new_args]

    def __getitem__(self, grid):
        grid = tuple(grid) + (1,) * (3 - len(tuple(grid)))  # Triton's runner takes 3
        launch = self.compiled[grid]

        def runner(*args, stream=None, **named):
            extra = [named.pop(name) for name in self.new_arg_names if name in named]
            if named:
                raise TypeError(f"unknown arguments {sorted(named)}; the rewrite "
                                f"added {self.new_arg_names}")
            return launch(*args, *extra, stream=stream)

        return runner


def _target(target):
    return target or triton.runtime.driver.active.get_current_target()


def compile_ttir(source, target=None):
    """Triton compiles a rewritten kernel: a .ttir path (made by balancekv-opt
    with --mlir-print-debuginfo, so that the new arguments are named) or a
    Rewrite."""
    if isinstance(source, Rewrite):
        if source.remark:
            raise ValueError(f"the kernel was not rewritten: {source.remark}")
        handle, path = tempfile.mkstemp(suffix=".ttir")
        with os.fdopen(handle, "w") as f:
            f.write(source.text)
        new_args = source.new_args
    else:
        path = source
        with open(path) as f:
            new_args = appended_args(f.read())
    return WeightedKernel(triton.compile(path, target=_target(target)), new_args)


def _hook(state):
    """Triton's stage hook: the ttir stage's module goes through the pass."""

    def add_stages(backend, stages, options, language, capability):
        make_ttir = stages.get("ttir")
        if make_ttir is None:
            return

        def ttir(src, metadata):
            module = make_ttir(src, metadata)
            rewrite = rewrite_ttir(str(module))
            state["rewrite"] = rewrite
            if rewrite.remark:
                return module
            handle, path = tempfile.mkstemp(suffix=".ttir")
            with os.fdopen(handle, "w") as f:
                f.write(rewrite.text)
            new = triton._C.libtriton.ir.parse_mlir_module(path, module.context)
            new.context = module.context
            os.unlink(path)
            return new

        stages["ttir"] = ttir

    return add_stages


def ast_source(fn, signature, constexprs=None):
    """triton.compiler.ASTSource of a @triton.jit kernel: `signature` its
    runtime arguments' Triton types, `constexprs` its constexpr values, put
    in the kernel's argument order (Triton binds arguments by position)."""
    constexprs = dict(constexprs or {})
    sig = {**signature, **{name: "constexpr" for name in constexprs}}
    sig = {name: sig[name] for name in fn.arg_names if name in sig}
    return ASTSource(fn, signature=sig, constexprs=constexprs)


def compile_jit(fn, signature, constexprs=None, ttir=None, target=None, **options):
    """An unmodified @triton.jit kernel compiled with its attention loops
    rewritten. `signature` maps its runtime arguments to Triton types
    ("*fp16", "i32", ...), `constexprs` its constexpr arguments to values,
    as for triton.compile(ASTSource(...)). With `ttir` (a .ttir path: the
    kernel's TTIR rewritten beforehand, e.g. by balancekv-opt) Triton
    replaces its own TTIR by it (`ir_override`); otherwise the pass runs in
    Triton's ttir stage (a stage hook; needs libbalancekv_capi). Raises
    ValueError with the pass's remark when nothing was rewritten. Compiled
    into its own cache directory, so Triton's cache never hands out the
    unrewritten kernel for it or the reverse."""
    src = ast_source(fn, signature, constexprs)
    knobs = triton.knobs
    saved_hook, saved_dir = knobs.runtime.add_stages_inspection_hook, knobs.cache.dir
    state = {}
    try:
        knobs.cache.dir = os.path.join(saved_dir or tempfile.gettempdir(), "balancekv")
        if ttir is not None:
            options = dict(options, ir_override=os.path.abspath(ttir))
            with open(ttir) as f:
                new_args = appended_args(f.read())
        else:
            knobs.runtime.add_stages_inspection_hook = _hook(state)
        compiled = triton.compile(src, target=_target(target), options=options or None)
    finally:
        knobs.runtime.add_stages_inspection_hook = saved_hook
        knobs.cache.dir = saved_dir
    if ttir is None:
        rewrite = state.get("rewrite")
        if rewrite is None:  # a cache hit: the TTIR kept there is rewritten
            rewrite = Rewrite(compiled.asm["ttir"])
        if rewrite.remark:
            raise ValueError(f"{fn.__name__} was not rewritten: {rewrite.remark}")
        new_args = rewrite.new_args
    if not new_args:
        raise ValueError(f"{fn.__name__}: the compiled kernel has no LW argument")
    # Triton's launcher reads the argument list off the source's signature.
    for name, ty in new_args:
        compiled.src.signature[name] = ty
    return WeightedKernel(compiled, new_args)


# ---------------------------------------------- balancekv ops as Triton ----

PLAN_ATTR = "balancekv.triton_plans"
_TORCH_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32",
                 "fp64": "float64", "i8": "int8", "i32": "int32", "i64": "int64"}


def _mlir_string(text):
    """An MLIR string literal's contents (\\XX hex escapes) as text."""
    return re.sub(r"\\([0-9A-Fa-f]{2})|\\\\", lambda m: chr(int(m.group(1), 16))
                  if m.group(1) else "\\", text)


class TritonProgram:
    """balancekv ops compiled to Triton kernels by --balancekv-convert-to-triton:
    the kernels (one TTIR module each) and, per function of the input, the
    launch plan (buffers to allocate, kernels to launch on them in order,
    copies, outputs). Made where MLIR is (`from_mlir`), saved and loaded as
    files (`save`/`load`), run with Triton and PyTorch anywhere (`run`)."""

    def __init__(self, kernels, plans):
        self.kernels = kernels  # name -> TTIR text
        self.plans = plans      # function name -> plan
        self._compiled = {}

    @classmethod
    def from_mlir(cls, text):
        """Runs --balancekv-convert-to-triton on MLIR text (in-process;
        needs libbalancekv_capi)."""
        return cls.parse(opt(text, "builtin.module(balancekv-convert-to-triton)"))

    @classmethod
    def parse(cls, text):
        """The pass's output: each `tt.func` into its own module, the plans
        out of the module attribute."""
        import json
        plans = re.search(PLAN_ATTR.replace(".", r"\.") + r' = "((?:[^"\\]|\\.)*)"', text)
        if not plans:
            raise ValueError(f"no {PLAN_ATTR} attribute: not the output of "
                             "--balancekv-convert-to-triton")
        kernels, lines, name = {}, [], None
        for line in text.splitlines():
            start = re.match(r"  tt\.func public @(\w+)\(", line)
            if start:
                name, lines = start.group(1), [line]
            elif name:
                lines.append(line)
                if line == "  }":
                    kernels[name] = "module {\n" + "\n".join(lines) + "\n}\n"
                    name = None
        return cls(kernels, json.loads(_mlir_string(plans.group(1))))

    def save(self, directory):
        import json
        os.makedirs(directory, exist_ok=True)
        for name, ttir in self.kernels.items():
            with open(os.path.join(directory, name + ".ttir"), "w") as f:
                f.write(ttir)
        with open(os.path.join(directory, "plans.json"), "w") as f:
            json.dump(self.plans, f, indent=1)

    @classmethod
    def load(cls, directory):
        import json
        with open(os.path.join(directory, "plans.json")) as f:
            plans = json.load(f)
        kernels = {}
        for plan in plans.values():
            for step in plan["steps"]:
                if "kernel" in step and step["kernel"] not in kernels:
                    with open(os.path.join(directory, step["kernel"] + ".ttir")) as f:
                        kernels[step["kernel"]] = f.read()
        return cls(kernels, plans)

    def compile(self, target=None, num_warps=1):
        """Triton compiles every kernel (one warp each: the kernels are
        scalar programs, one per iteration point)."""
        for name, ttir in self.kernels.items():
            if name in self._compiled:
                continue
            handle, path = tempfile.mkstemp(suffix=".ttir", prefix=name + "_")
            with os.fdopen(handle, "w") as f:
                f.write(ttir)
            try:
                self._compiled[name] = triton.compile(
                    path, target=_target(target), options={"num_warps": num_warps})
            finally:
                os.unlink(path)
        return self._compiled

    def run(self, function, *inputs, profile=None):
        """The plan of `function` on torch tensors (on the GPU, contiguous,
        of the plan's shapes and dtypes); returns its outputs. With a list
        as `profile`, appends (step, milliseconds) per step (synchronising)."""
        import torch
        plan = self.plans[function]
        if len(inputs) != len(plan["inputs"]):
            raise TypeError(f"{function} takes {len(plan['inputs'])} inputs")
        compiled = self.compile()
        values = {}
        for spec, x in zip(plan["inputs"], inputs):
            dtype = getattr(torch, _TORCH_DTYPES[spec["dtype"]])
            if list(x.shape) != spec["shape"] or x.dtype != dtype:
                raise TypeError(f"{spec['name']}: expected {spec['shape']} "
                                f"{spec['dtype']}, got {list(x.shape)} {x.dtype}")
            values[spec["name"]] = x.contiguous()
        device = inputs[0].device if inputs else "cuda"
        for spec in plan["buffers"]:
            values[spec["name"]] = torch.empty(
                spec["shape"], dtype=getattr(torch, _TORCH_DTYPES[spec["dtype"]]),
                device=device)
        for step in plan["steps"]:
            if profile is not None:
                start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
                start.record()
            if "copy" in step:
                src, dst = step["copy"]
                values[dst].copy_(values[src])
            else:
                compiled[step["kernel"]][tuple(step["grid"])](
                    *[values[a] for a in step["args"]])
            if profile is not None:
                end.record()
                end.synchronize()
                profile.append((step.get("kernel", "copy"), start.elapsed_time(end)))
        return tuple(values[out["name"]].view(out["shape"]) for out in plan["outputs"])
