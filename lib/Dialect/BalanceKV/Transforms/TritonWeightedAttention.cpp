//===- TritonWeightedAttention.cpp - Triton attention over a compressed cache ===//
//
// --balancekv-triton-weighted-attention: finds the flash-attention loops of a
// Triton kernel (TTIR) and makes the kernel attend over a BalanceKV
// compressed cache: the log-weights of the kept keys are loaded next to the
// key tile and added to the logits in the kernel's own base, right where
// the kernel subtracts its running max before exponentiating. Everything else
// (running max, rescaling, normalisation, masks, split-K outputs) then holds
// for the weighted softmax as written, because the bias enters the logits
// the kernel already exponentiates, once.
//
// Where the log-weights live is read off how the kernel addresses its keys:
//  - a tensor of pointers `K + Σ offsets`: the log-weights are addressed with
//    the same offsets minus the feature term. Each integer kernel argument K's
//    address multiplies by (a stride) gets a twin argument `lw_<name>`, so any
//    log-weights layout works; offsets with only constant strides (Inductor's
//    kernels) are divided by the head dim (log-weights dense in K's order).
//  - a block pointer: its base and its key-dim stride the same way, its
//    key-dim offset carried through the loop next to the block pointer.
//  - a tensor descriptor: the rows of the descriptor's key dim, contiguous.
//
//===----------------------------------------------------------------------===//

#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h"
#include "balancekv/Dialect/TritonCompat/IR/Dialect.h"

#include "mlir/Analysis/SliceAnalysis.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"

#include "llvm/Support/MathExtras.h"

namespace balancekv {
#define GEN_PASS_DEF_BALANCEKVTRITONWEIGHTEDATTENTIONPASS
#include "balancekv/Dialect/BalanceKV/Transforms/Passes.h.inc"
} // namespace balancekv

using namespace mlir;
using namespace balancekv;

namespace {

/// Reasons a loop or kernel is left alone, as remark text.
using Why = std::string;

/// The unit attribute a rewritten kernel carries.
constexpr llvm::StringLiteral kRewrittenAttr = "balancekv.log_weights";

Value peelElementCasts(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (!isa<arith::ExtFOp, arith::TruncFOp, tt::FpToFpOp>(def))
      break;
    v = def->getOperand(0);
  }
  return v;
}

bool isKernelArg(Value v, tt::FuncOp func) {
  auto arg = dyn_cast<BlockArgument>(v);
  return arg && arg.getOwner() == &func.getBody().front();
}

std::string argName(BlockArgument arg) {
  if (auto name = dyn_cast<NameLoc>(arg.getLoc()))
    return name.getName().str();
  return "arg" + std::to_string(arg.getArgNumber());
}

/// How the kernel reads its key tile, and which of the tile's dims is the
/// key (token) dim.
struct KeyTile {
  Operation *load = nullptr; // tt.load or tt.descriptor_load
  int64_t keyDim = 0;
  int64_t blockN = 0;
  int64_t headDim = 0;
};

/// One flash-attention loop: the exp of `logits - running max` and the key
/// tile the logits come from.
struct AttentionLoop {
  scf::ForOp loop;
  arith::SubFOp expArgument; // logits (lhs) minus the running max
  bool base2 = false;        // exp2 kernels carry logits × log2 e
  int64_t scoreKeyDim = 0;   // which dim of the logits is the key dim
  KeyTile key;
};

/// `qk`: a tt.dot or a sum-of-products tt.reduce in `slice` whose key
/// operand is a tile loaded in `loop`; returns the tile.
FailureOr<KeyTile> keyTileOf(Operation *qk, scf::ForOp loop, Why &why) {
  Value tile;
  int64_t keyDim;
  if (auto dot = dyn_cast<tt::DotOp>(qk)) {
    // d[m, n] = a[m, k] b[k, n]: the keys are b's dim 1, through transposes.
    tile = peelElementCasts(dot.getB());
    keyDim = 1;
    while (auto trans = tile.getDefiningOp<tt::TransOp>()) {
      keyDim = trans.getOrder()[keyDim];
      tile = peelElementCasts(trans.getSrc());
    }
  } else {
    auto reduce = cast<tt::ReduceOp>(qk);
    auto mul = reduce.getSrcs()[0].getDefiningOp<arith::MulFOp>();
    if (!mul) {
      why = "the sum-of-products logits are not a product";
      return failure();
    }
    // One factor is the key tile (loaded in the loop, full rank), the
    // other the broadcast query.
    for (Value factor : mul->getOperands()) {
      Value candidate = peelElementCasts(factor);
      if (isa_and_nonnull<tt::LoadOp, tt::DescriptorLoadOp>(
              candidate.getDefiningOp()))
        tile = candidate;
    }
    auto type = tile ? dyn_cast<RankedTensorType>(tile.getType()) : nullptr;
    if (!type || type.getRank() != 2) {
      why = "the sum-of-products logits do not multiply a 2-D loaded tile";
      return failure();
    }
    keyDim = 1 - reduce.getAxis();
  }
  Operation *load = tile.getDefiningOp();
  if (!isa_and_nonnull<tt::LoadOp, tt::DescriptorLoadOp>(load) ||
      !loop->isProperAncestor(load)) {
    why = "the keys of the QK product are not a tile loaded in the loop";
    return failure();
  }
  auto type = cast<RankedTensorType>(tile.getType());
  if (type.getRank() != 2) {
    why = "the key tile is not 2-D";
    return failure();
  }
  return KeyTile{load, keyDim, type.getDimSize(keyDim),
                 type.getDimSize(1 - keyDim)};
}

/// The QK product behind `logits`: the one tt.dot, or sum-of-products
/// tt.reduce, in its backward slice inside `loop`.
FailureOr<Operation *> qkProductOf(Value logits, scf::ForOp loop, Why &why) {
  BackwardSliceOptions options;
  options.inclusive = true;
  options.omitUsesFromAbove = false;
  options.filter = [&](Operation *op) { return loop->isProperAncestor(op); };
  SetVector<Operation *> slice;
  (void)getBackwardSlice(logits, &slice, options);
  SmallVector<Operation *> products;
  for (Operation *op : slice) {
    if (isa<tt::DotOp>(op))
      products.push_back(op);
    else if (auto reduce = dyn_cast<tt::ReduceOp>(op);
             reduce && reduce.getSrcs().size() == 1 &&
             reduce.getSrcs()[0].getDefiningOp<arith::MulFOp>() &&
             isa_and_nonnull<arith::AddFOp>(
                 reduce.getCombineOp().front().getTerminator()->getOperand(0)
                     .getDefiningOp()))
      products.push_back(op);
  }
  if (products.size() != 1) {
    why = products.empty() ? "the exponentiated logits come from no QK product"
                           : "the exponentiated logits come from more than "
                             "one product";
    return failure();
  }
  return products.front();
}

/// Whether the exponentials `p` reach a product with the values: a tt.dot
/// operand (P V) or a multiply that is summed (decode's Σ p v).
bool feedsValueProduct(Value p) {
  SmallVector<Value> work{p};
  DenseSet<Value> seen;
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (!seen.insert(v).second)
      continue;
    for (Operation *user : v.getUsers()) {
      if (isa<tt::DotOp>(user) && user->getOperand(0) == v)
        return true;
      if (isa<arith::MulFOp>(user))
        for (Operation *next : user->getResult(0).getUsers())
          if (isa<tt::ReduceOp>(next))
            return true;
      if (isa<arith::ExtFOp, arith::TruncFOp, tt::FpToFpOp, tt::BroadcastOp,
              tt::ExpandDimsOp, tt::ReshapeOp, tt::TransOp>(user))
        work.push_back(user->getResult(0));
    }
  }
  return false;
}

/// The flash-attention loop in `loop`, if it is one.
FailureOr<AttentionLoop> matchAttentionLoop(scf::ForOp loop, Why &why) {
  AttentionLoop match{loop, {}, false, 0, {}};
  int found = 0;
  for (Operation &op : *loop.getBody()) {
    if (!isa<math::Exp2Op, math::ExpOp>(op))
      continue;
    auto type = dyn_cast<RankedTensorType>(op.getResult(0).getType());
    auto sub = op.getOperand(0).getDefiningOp<arith::SubFOp>();
    if (!type || !sub || !feedsValueProduct(op.getResult(0)))
      continue;
    FailureOr<Operation *> qk = qkProductOf(sub.getLhs(), loop, why);
    if (failed(qk))
      return failure();
    FailureOr<KeyTile> key = keyTileOf(*qk, loop, why);
    if (failed(key))
      return failure();
    match.expArgument = sub;
    match.base2 = isa<math::Exp2Op>(op);
    match.key = *key;
    // The logits' key dim: a dot's last dim; a sum-of-products' remaining
    // dim, which for 1-D logits is dim 0.
    match.scoreKeyDim = isa<tt::DotOp>(*qk) ? type.getRank() - 1 : 0;
    if (type.getDimSize(match.scoreKeyDim) != key->blockN) {
      why = "the logits' key dim does not match the key tile";
      return failure();
    }
    ++found;
  }
  if (found != 1) {
    why = found ? "more than one exp of logits feeds the value product"
                : "no exp of `logits - max` feeding a product with the values";
    return failure();
  }
  return match;
}

/// A loop that looks like attention (a tt.dot or a sum of products, and an
/// exp) but did not match is a reason to leave the whole kernel alone.
bool looksLikeAttention(scf::ForOp loop) {
  bool product = false, exp = false;
  for (Operation &op : *loop.getBody()) {
    product |= isa<tt::DotOp, tt::ReduceOp>(op);
    exp |= isa<math::Exp2Op, math::ExpOp>(op);
  }
  return product && exp;
}

/// Rewrites one kernel. Holds the new arguments so that every attention loop
/// of the kernel shares them.
class KernelRewriter {
public:
  explicit KernelRewriter(tt::FuncOp func) : func(func), b(func) {}

  /// Checks that every attention loop can be rewritten (no IR changed), then
  /// rewrites them. On failure `why` says what stopped it.
  LogicalResult run(ArrayRef<AttentionLoop> loops, Why &why) {
    for (AttentionLoop loop : loops)
      if (failed(check(loop, why)))
        return failure();
    // The new arguments first: LW, then the twins in the order of the
    // strides they stand for.
    logWeightsArg();
    SmallVector<BlockArgument> strides;
    for (AttentionLoop loop : loops)
      for (Value stride : keyStrides(loop))
        if (!llvm::is_contained(strides, stride))
          strides.push_back(cast<BlockArgument>(stride));
    llvm::sort(strides, [](BlockArgument a, BlockArgument b) {
      return a.getArgNumber() < b.getArgNumber();
    });
    for (BlockArgument stride : strides)
      twin(stride);
    splitKeyLengths(MutableArrayRef<AttentionLoop>(
        const_cast<AttentionLoop *>(loops.data()), loops.size()));
    for (AttentionLoop loop : loops)
      rewrite(loop);
    return success();
  }

private:
  tt::FuncOp func;
  OpBuilder b;
  BlockArgument logWeights;
  llvm::MapVector<Value, Value> twinOf; // K stride argument -> lw twin

  // -- the key tile's address, decomposed --------------------------------

  /// `ptr` = kernel argument + Σ offsets (scalars, or tensors of the tile's
  /// rank with size-1 dims where they are broadcast).
  LogicalResult decompose(Value ptr, BlockArgument &base,
                          SmallVectorImpl<Value> &offsets, Why &why) {
    while (true) {
      if (isKernelArg(ptr, func)) {
        base = cast<BlockArgument>(ptr);
        return success();
      }
      Operation *def = ptr.getDefiningOp();
      if (auto add = dyn_cast_or_null<tt::AddPtrOp>(def)) {
        splitSum(add.getOffset(), offsets);
        ptr = add.getPtr();
      } else if (isa_and_nonnull<tt::SplatOp, tt::BroadcastOp>(def)) {
        ptr = def->getOperand(0);
      } else {
        why = "the key pointers are not a kernel argument plus offsets "
              "(e.g. pointers carried through the loop)";
        return failure();
      }
    }
  }

  static void splitSum(Value offset, SmallVectorImpl<Value> &terms) {
    Value peeled = offset;
    while (auto bc = peeled.getDefiningOp<tt::BroadcastOp>())
      peeled = bc.getSrc();
    if (auto add = peeled.getDefiningOp<arith::AddIOp>()) {
      splitSum(add.getLhs(), terms);
      splitSum(add.getRhs(), terms);
      return;
    }
    terms.push_back(peeled);
  }

  enum class TermKind { Uniform, Key, Feature, Mixed };
  static TermKind kindOf(Value term, int64_t keyDim) {
    auto type = dyn_cast<RankedTensorType>(term.getType());
    if (!type)
      return TermKind::Uniform;
    bool alongKey = type.getDimSize(keyDim) != 1;
    bool alongFeature = type.getDimSize(1 - keyDim) != 1;
    if (alongKey && alongFeature)
      return TermKind::Mixed;
    return alongKey ? TermKind::Key
                    : (alongFeature ? TermKind::Feature : TermKind::Uniform);
  }

  /// Integer kernel arguments `term` multiplies by (its strides).
  void collectStrides(Value term, SetVector<Value> &strides) {
    // Through the address arithmetic only: not into loops whose carried
    // values it reads (their bodies use everything).
    BackwardSliceOptions options;
    options.inclusive = true;
    options.filter = [](Operation *op) { return op->getNumRegions() == 0; };
    SetVector<Operation *> slice;
    (void)getBackwardSlice(term, &slice, options);
    for (Operation *op : slice) {
      if (!isa<arith::MulIOp>(op))
        continue;
      for (Value factor : op->getOperands()) {
        Value v = factor;
        while (Operation *def = v.getDefiningOp()) {
          if (!isa<tt::SplatOp, tt::BroadcastOp, tt::ExpandDimsOp,
                   arith::ExtSIOp, arith::ExtUIOp, arith::TruncIOp>(def))
            break;
          v = def->getOperand(0);
        }
        if (isKernelArg(v, func) && v.getType().isIntOrIndex())
          strides.insert(v);
      }
    }
  }

  /// `term` = x * c for a constant c (through splat): c, else 0.
  static int64_t constantStride(Value term) {
    auto mul = term.getDefiningOp<arith::MulIOp>();
    if (!mul)
      return 0;
    for (Value factor : mul->getOperands()) {
      APInt value;
      if (matchPattern(factor, m_ConstantInt(&value)))
        return value.getSExtValue();
    }
    return 0;
  }

  /// A key block pointer carried by the attention loop: its position among
  /// the loop's carried values, where it is made and where it is advanced.
  struct CarriedBlockPointer {
    unsigned index;
    tt::MakeTensorPtrOp make;
    tt::AdvanceOp advance;
  };

  /// The block pointer `ptr` as the loop carries it, or why not.
  static FailureOr<CarriedBlockPointer>
  carriedBlockPointer(scf::ForOp loop, Value ptr, Why &why) {
    auto iterArg = dyn_cast<BlockArgument>(ptr);
    if (!iterArg || iterArg.getOwner() != loop.getBody() ||
        iterArg.getArgNumber() == 0) {
      why = "the key block pointer is not carried by the attention loop";
      return failure();
    }
    unsigned index = iterArg.getArgNumber() - 1;
    auto make = loop.getInitArgs()[index].getDefiningOp<tt::MakeTensorPtrOp>();
    auto advance = loop.getYieldedValues()[index].getDefiningOp<tt::AdvanceOp>();
    if (!make || !advance || advance.getPtr() != iterArg) {
      why = "the key block pointer is not made before the loop and advanced "
            "once per iteration";
      return failure();
    }
    return CarriedBlockPointer{index, make, advance};
  }

  /// The stride arguments of the key address terms the log-weights keep.
  SetVector<Value> keyStrides(AttentionLoop match) {
    SetVector<Value> strides;
    auto load = dyn_cast<tt::LoadOp>(match.key.load);
    if (!load)
      return strides; // descriptors: rows, no strides
    Value ptr = load.getPtr();
    if (isa<tt::PointerType>(ptr.getType())) {
      Why ignored;
      tt::MakeTensorPtrOp make =
          carriedBlockPointer(match.loop, ptr, ignored)->make; // checked
      ptr = make.getBase();
      Value stride = peelIntCasts(make.getStrides()[match.key.keyDim]);
      if (isKernelArg(stride, func))
        strides.insert(stride);
    }
    BlockArgument base;
    SmallVector<Value> terms;
    Why ignored;
    (void)decompose(ptr, base, terms, ignored);
    for (Value term : terms)
      if (kindOf(term, match.key.keyDim) != TermKind::Feature)
        collectStrides(term, strides);
    return strides;
  }

  // -- checks (no IR changes) ---------------------------------------------

  LogicalResult checkPointerTerms(Value ptr, int64_t keyDim, int64_t headDim,
                                  Why &why) {
    BlockArgument base;
    SmallVector<Value> terms;
    if (failed(decompose(ptr, base, terms, why)))
      return failure();
    for (Value term : terms) {
      TermKind kind = kindOf(term, keyDim);
      if (kind == TermKind::Mixed) {
        why = "a key offset term varies with both the key and the feature "
              "index";
        return failure();
      }
      if (kind == TermKind::Feature)
        continue;
      SetVector<Value> strides;
      collectStrides(term, strides);
      int64_t c = constantStride(term);
      if (strides.empty() && c % headDim != 0) {
        why = "a constant key stride (" + std::to_string(c) +
              ") is not a multiple of the head dim";
        return failure();
      }
    }
    return success();
  }

  LogicalResult check(AttentionLoop match, Why &why) {
    Operation *load = match.key.load;
    if (auto descLoad = dyn_cast<tt::DescriptorLoadOp>(load)) {
      Value desc = descLoad.getDesc();
      if (isKernelArg(desc, func)) {
        auto arg = cast<BlockArgument>(desc);
        // A host descriptor's shape follows it as i32 arguments.
        if (arg.getArgNumber() + 1 + match.key.keyDim >= func.getNumArguments()) {
          why = "the key descriptor argument is not followed by its shape";
          return failure();
        }
        return success();
      }
      auto make = desc.getDefiningOp<tt::MakeTensorDescOp>();
      if (!make || !isKernelArg(make.getBase(), func)) {
        why = "the key descriptor is neither a kernel argument nor made in "
              "the kernel from a kernel argument";
        return failure();
      }
      return success();
    }
    auto tload = cast<tt::LoadOp>(load);
    Value ptr = tload.getPtr();
    if (isa<tt::PointerType>(ptr.getType())) {
      // A block pointer carried by the loop and advanced in it.
      FailureOr<CarriedBlockPointer> carried =
          carriedBlockPointer(match.loop, ptr, why);
      if (failed(carried))
        return failure();
      tt::MakeTensorPtrOp make = carried->make;
      if (failed(checkPointerTerms(make.getBase(), match.key.keyDim,
                                    match.key.headDim, why)))
        return failure();
      Value stride = make.getStrides()[match.key.keyDim];
      if (!isKernelArg(peelIntCasts(stride), func) &&
          constantStride(stride) == 0 && !matchPattern(stride, m_Constant())) {
        why = "the key block pointer's key stride is neither a kernel "
              "argument nor a constant";
        return failure();
      }
      return success();
    }
    if (failed(checkPointerTerms(ptr, match.key.keyDim, match.key.headDim, why)))
      return failure();
    if (Value mask = tload.getMask()) {
      auto type = dyn_cast<RankedTensorType>(peelBroadcast(mask).getType());
      if (type && type.getDimSize(1 - match.key.keyDim) != 1) {
        why = "the key load's mask depends on the feature index";
        return failure();
      }
    }
    return success();
  }

  /// A mask without its broadcast (or splat) to the tile's shape.
  static Value peelBroadcast(Value v) {
    while (Operation *def = v.getDefiningOp()) {
      if (!isa<tt::BroadcastOp, tt::SplatOp>(def))
        break;
      v = def->getOperand(0);
    }
    return v;
  }

  // -- rewriting -----------------------------------------------------------

  /// A new last argument, named `name` (`name_1`, ... if the kernel
  /// already has an argument of that name, e.g. its own `LW`).
  BlockArgument appendArg(Type type, StringRef name) {
    std::string unique = name.str();
    auto taken = [&](StringRef n) {
      return llvm::any_of(func.getArguments(), [&](BlockArgument arg) {
        return argName(arg) == n;
      });
    };
    for (int i = 1; taken(unique); ++i)
      unique = name.str() + "_" + std::to_string(i);
    unsigned index = func.getNumArguments();
    MLIRContext *ctx = func.getContext();
    (void)func.insertArgument(index, type, DictionaryAttr::get(ctx),
                              NameLoc::get(StringAttr::get(ctx, unique)));
    return func.getArgument(index);
  }

  BlockArgument logWeightsArg() {
    if (!logWeights)
      logWeights = appendArg(
          tt::PointerType::get(b.getF32Type(), /*addressSpace=*/1), "LW");
    return logWeights;
  }

  Value twin(Value stride) {
    auto it = twinOf.find(stride);
    if (it != twinOf.end())
      return it->second;
    Value arg = appendArg(stride.getType(),
                          "lw_" + argName(cast<BlockArgument>(stride)));
    twinOf[stride] = arg;
    return arg;
  }

  /// `v` recomputed with every stride argument replaced by its twin (only
  /// the ops that depend on a stride are cloned).
  Value withTwinStrides(Value v, const SetVector<Value> &strides,
                        IRMapping &cloned) {
    return recompute(
        v, [&](Value x) { return strides.contains(x) ? twin(x) : Value(); },
        cloned);
  }

  /// `v` recomputed (at the builder's point) with the values `replace`
  /// maps (to non-null) replaced; only the ops that depend on them are
  /// cloned, region-holding ops never.
  Value recompute(Value v, llvm::function_ref<Value(Value)> replace,
                  IRMapping &cloned) {
    if (Value r = replace(v))
      return r;
    if (Value done = cloned.lookupOrNull(v))
      return done;
    Operation *def = v.getDefiningOp();
    if (!def || def->getNumRegions() != 0)
      return v;
    bool changed = false;
    for (Value operand : def->getOperands()) {
      Value replacement = recompute(operand, replace, cloned);
      if (replacement != operand) {
        cloned.map(operand, replacement);
        changed = true;
      }
    }
    if (!changed)
      return v;
    Operation *copy = b.clone(*def, cloned);
    return copy->getResult(cast<OpResult>(v).getResultNumber());
  }

  static bool isIntegerLike(Value v) {
    return isa<IntegerType, IndexType>(getElementTypeOrSelf(v.getType()));
  }

  /// What the key side computes from lengths: integers (bounds, offsets,
  /// masks) and tensor descriptors made in the kernel (their shapes).
  static bool isBlockPointer(Value v) {
    auto ptr = dyn_cast<tt::PointerType>(v.getType());
    return ptr && isa<RankedTensorType>(ptr.getPointeeType());
  }

  static bool isKeySideValue(Value v) {
    return isIntegerLike(v) || isa<tt::TensorDescType>(v.getType());
  }

  /// What a loop's key side reads from outside: its bounds, integer and
  /// block-pointer initial values, and the integers and descriptors its
  /// body captures.
  static SetVector<Value> keySideInputs(scf::ForOp loop) {
    SetVector<Value> inputs;
    for (Value v : loop->getOperands())
      if (isIntegerLike(v) || isBlockPointer(v))
        inputs.insert(v);
    loop.getBody()->walk([&](Operation *op) {
      for (Value v : op->getOperands())
        if (isKeySideValue(v) &&
            !loop->isAncestor(v.getParentBlock()->getParentOp()))
          inputs.insert(v);
    });
    return inputs;
  }

  /// A kernel argument that bounds the attention loops and also serves
  /// anything else (self-attention kernels' one length, for the queries'
  /// masks and addresses too) gets a twin `<name>_kv` for the keys: the
  /// loops' bounds, initial values and captured integers are recomputed
  /// from it, so the kernel attends over a compressed cache of its own
  /// length. Arguments only the key side reads stay as they are.
  void splitKeyLengths(MutableArrayRef<AttentionLoop> loops) {
    SetVector<Value> lengths;
    DenseSet<Operation *> keySide;
    BackwardSliceOptions options;
    options.inclusive = true;
    options.filter = [](Operation *op) { return op->getNumRegions() == 0; };
    for (AttentionLoop &l : loops) {
      SetVector<Operation *> slice;
      (void)getBackwardSlice(l.loop.getUpperBound(), &slice, options);
      for (Operation *op : slice)
        for (Value v : op->getOperands())
          if (isKernelArg(v, func) && isIntegerLike(v))
            lengths.insert(v);
      if (isKernelArg(l.loop.getUpperBound(), func))
        lengths.insert(l.loop.getUpperBound());
      for (Value input : keySideInputs(l.loop)) {
        SetVector<Operation *> inputSlice;
        (void)getBackwardSlice(input, &inputSlice, options);
        keySide.insert(inputSlice.begin(), inputSlice.end());
      }
    }
    auto inLoops = [&](Operation *op) {
      return llvm::any_of(loops, [&](AttentionLoop &l) {
        return l.loop->isAncestor(op);
      });
    };
    for (Value length : lengths) {
      SetVector<Operation *> users;
      ForwardSliceOptions forward;
      forward.filter = [&](Operation *op) { return !inLoops(op); };
      getForwardSlice(length, &users, forward);
      if (llvm::all_of(users, [&](Operation *op) { return keySide.contains(op); }))
        continue;
      Value keyLength = appendArg(length.getType(),
                                  argName(cast<BlockArgument>(length)) + "_kv");
      auto replace = [&](Value x) { return x == length ? keyLength : Value(); };
      for (AttentionLoop &l : loops) {
        b.setInsertionPoint(l.loop);
        IRMapping cloned;
        for (OpOperand &operand : l.loop->getOpOperands())
          if (isIntegerLike(operand.get()) || isBlockPointer(operand.get()))
            operand.set(recompute(operand.get(), replace, cloned));
        l.loop.getBody()->walk([&](Operation *op) {
          for (OpOperand &operand : op->getOpOperands()) {
            Value v = operand.get();
            if (isKeySideValue(v) &&
                !l.loop->isAncestor(v.getParentBlock()->getParentOp()))
              operand.set(recompute(v, replace, cloned));
          }
        });
      }
    }
  }

  /// The log-weights' offset for one of K's offset terms.
  Value lwTerm(Value term, int64_t headDim, IRMapping &cloned) {
    SetVector<Value> strides;
    collectStrides(term, strides);
    if (!strides.empty())
      return withTwinStrides(term, strides, cloned);
    int64_t c = constantStride(term);
    if (c == 0)
      return term; // an index with stride 1: the same for the log-weights
    // Constant strides: log-weights dense in K's order, K dense in its
    // feature dim, so every stride divides by the head dim (checked).
    auto mul = term.getDefiningOp<arith::MulIOp>();
    APInt ignored;
    Value index = matchPattern(mul.getLhs(), m_ConstantInt(&ignored))
                      ? mul.getRhs()
                      : mul.getLhs();
    if (c == headDim)
      return index;
    return arith::MulIOp::create(b, term.getLoc(), index,
                                   integerLike(term, c / headDim));
  }

  Value integerLike(Value like, int64_t value) {
    Type elem = getElementTypeOrSelf(like.getType());
    Value c = arith::ConstantOp::create(b, like.getLoc(),
                                          b.getIntegerAttr(elem, value));
    if (auto tensor = dyn_cast<RankedTensorType>(like.getType()))
      c = tt::SplatOp::create(b, like.getLoc(), tensor, c);
    return c;
  }

  static Value peelIntCasts(Value v) {
    while (Operation *def = v.getDefiningOp()) {
      if (!isa<arith::ExtSIOp, arith::ExtUIOp, arith::TruncIOp>(def))
        break;
      v = def->getOperand(0);
    }
    return v;
  }

  /// The log-weights' twin of one of K's strides (a block pointer's).
  Value lwStride(Value stride, int64_t headDim, IRMapping &cloned) {
    if (isKernelArg(peelIntCasts(stride), func)) {
      SetVector<Value> strides;
      strides.insert(peelIntCasts(stride));
      return withTwinStrides(stride, strides, cloned);
    }
    if (constantStride(stride) != 0)
      return lwTerm(stride, headDim, cloned);
    APInt value;
    matchPattern(stride, m_ConstantInt(&value));
    return integerLike(stride, value.getSExtValue() / headDim);
  }

  /// A [BN] tensor of the term's values along the key dim.
  Value asKeyVector(Value term, int64_t blockN, Location loc) {
    auto vec = RankedTensorType::get({blockN}, getElementTypeOrSelf(term));
    auto type = dyn_cast<RankedTensorType>(term.getType());
    if (!type)
      return tt::SplatOp::create(b, loc, vec, term);
    if (type.getNumElements() == 1) {
      auto one = RankedTensorType::get({1}, vec.getElementType());
      Value flat = type.getRank() == 1
                       ? term
                       : tt::ReshapeOp::create(b, loc, one, term).getResult();
      return tt::BroadcastOp::create(b, loc, vec, flat);
    }
    return tt::ReshapeOp::create(b, loc, vec, term);
  }

  /// lw pointers [BN] for pointer-form key tiles.
  Value lwPointersFromPointerTile(Value ptr, const KeyTile &key, Location loc,
                                  IRMapping &cloned) {
    BlockArgument base;
    SmallVector<Value> terms;
    Why ignored;
    (void)decompose(ptr, base, terms, ignored);
    Value scalarPtr = logWeightsArg();
    SmallVector<Value> keyTerms;
    for (Value term : terms) {
      TermKind kind = kindOf(term, key.keyDim);
      if (kind == TermKind::Feature)
        continue;
      Value lw = lwTerm(term, key.headDim, cloned);
      if (isa<RankedTensorType>(lw.getType()))
        keyTerms.push_back(lw);
      else
        scalarPtr = tt::AddPtrOp::create(b, loc, scalarPtr.getType(),
                                           scalarPtr, lw);
    }
    auto ptrs =
        RankedTensorType::get({key.blockN}, scalarPtr.getType());
    Value result = tt::SplatOp::create(b, loc, ptrs, scalarPtr);
    for (Value term : keyTerms)
      result = tt::AddPtrOp::create(b, loc, ptrs, result,
                                      asKeyVector(term, key.blockN, loc));
    return result;
  }

  Value makeRange(int64_t n, Location loc) {
    return tt::MakeRangeOp::create(b, 
        loc, RankedTensorType::get({n}, b.getI32Type()), 0, n);
  }

  /// `rows + [0, BN)` as pointers into the log-weights, and `< limit` mask.
  std::pair<Value, Value> lwPointersFromRows(Value row, Value limit,
                                             int64_t blockN, Location loc) {
    auto i32s = RankedTensorType::get({blockN}, b.getI32Type());
    Value rows = arith::AddIOp::create(b, 
        loc, tt::SplatOp::create(b, loc, i32s, row), makeRange(blockN, loc));
    Value lw = logWeightsArg();
    Value ptrs = tt::AddPtrOp::create(b, 
        loc, RankedTensorType::get({blockN}, lw.getType()),
        tt::SplatOp::create(b, loc, RankedTensorType::get({blockN}, lw.getType()),
                              lw),
        rows);
    Value mask;
    if (limit) {
      Type elem = limit.getType();
      Value wideRows = rows;
      if (elem != b.getI32Type())
        wideRows = arith::ExtSIOp::create(b, 
            loc, RankedTensorType::get({blockN}, elem), rows);
      mask = arith::CmpIOp::create(b, 
          loc, arith::CmpIPredicate::slt, wideRows,
          tt::SplatOp::create(b, loc, RankedTensorType::get({blockN}, elem),
                                limit));
    }
    return {ptrs, mask};
  }

  /// For a block-pointer key tile: carries the key-dim offset through the
  /// loop next to the block pointer; returns the lw pointers and mask.
  std::pair<Value, Value> lwPointersFromBlockPointer(AttentionLoop &match,
                                                     Location loc) {
    auto tload = cast<tt::LoadOp>(match.key.load);
    Why ignored;
    CarriedBlockPointer carried =
        *carriedBlockPointer(match.loop, tload.getPtr(), ignored); // checked
    tt::MakeTensorPtrOp make = carried.make;
    int64_t k = match.key.keyDim;
    IRRewriter rewriter(func.getContext());
    rewriter.setInsertionPoint(match.loop);
    auto newLoop = cast<scf::ForOp>(*match.loop.replaceWithAdditionalYields(
        rewriter, ValueRange{make.getOffsets()[k]},
        /*replaceInitOperandUsesInLoop=*/false,
        [&](OpBuilder &yb, Location yloc, ArrayRef<BlockArgument> newArgs) {
          Value next = arith::AddIOp::create(yb, yloc, newArgs[0],
                                             carried.advance.getOffsets()[k]);
          return SmallVector<Value>{next};
        }));
    match.loop = newLoop;
    Value offset = newLoop.getRegionIterArgs().back();

    // Base and key-dim stride: the kernel's, with twin strides.
    IRMapping cloned;
    b.setInsertionPoint(make);
    BlockArgument base;
    SmallVector<Value> terms;
    (void)decompose(make.getBase(), base, terms, ignored);
    Value scalarPtr = logWeightsArg();
    for (Value term : terms)
      scalarPtr = tt::AddPtrOp::create(b, loc, scalarPtr.getType(), scalarPtr,
                                         lwTerm(term, match.key.headDim,
                                                cloned));
    Value stride = lwStride(make.getStrides()[k], match.key.headDim, cloned);
    Value limit = make.getShape()[k];

    b.setInsertionPoint(match.expArgument);
    int64_t n = match.key.blockN;
    auto i64s = RankedTensorType::get({n}, b.getI64Type());
    Value rows = arith::ExtSIOp::create(b, 
        loc, i64s,
        arith::AddIOp::create(b, 
            loc,
            tt::SplatOp::create(b, loc,
                                  RankedTensorType::get({n}, b.getI32Type()),
                                  offset),
            makeRange(n, loc)));
    auto ptrType = RankedTensorType::get({n}, scalarPtr.getType());
    Value ptrs = tt::AddPtrOp::create(b, 
        loc, ptrType, tt::SplatOp::create(b, loc, ptrType, scalarPtr),
        arith::MulIOp::create(b, loc, rows,
                                tt::SplatOp::create(b, loc, i64s, stride)));
    Value mask;
    if (llvm::is_contained(tload.getBoundaryCheck(), k))
      mask = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, rows,
                                     tt::SplatOp::create(b, loc, i64s, limit));
    return {ptrs, mask};
  }

  void rewrite(AttentionLoop match) {
    Location loc = match.expArgument.getLoc();
    Operation *load = match.key.load;
    int64_t n = match.key.blockN;
    Value ptrs, mask;
    if (auto descLoad = dyn_cast<tt::DescriptorLoadOp>(load)) {
      b.setInsertionPoint(match.expArgument);
      Value desc = descLoad.getDesc();
      Value limit;
      if (auto arg = dyn_cast<BlockArgument>(desc))
        limit = func.getArgument(arg.getArgNumber() + 1 + match.key.keyDim);
      else
        limit = desc.getDefiningOp<tt::MakeTensorDescOp>()
                    .getShape()[match.key.keyDim];
      std::tie(ptrs, mask) = lwPointersFromRows(
          descLoad.getIndices()[match.key.keyDim], limit, n, loc);
    } else if (isa<tt::PointerType>(
                   cast<tt::LoadOp>(load).getPtr().getType())) {
      std::tie(ptrs, mask) = lwPointersFromBlockPointer(match, loc);
    } else {
      auto tload = cast<tt::LoadOp>(load);
      b.setInsertionPoint(match.expArgument);
      IRMapping cloned;
      ptrs = lwPointersFromPointerTile(tload.getPtr(), match.key, loc, cloned);
      if (Value keyMask = tload.getMask())
        mask = asKeyVector(peelBroadcast(keyMask), n, loc);
    }

    b.setInsertionPoint(match.expArgument);
    auto f32s = RankedTensorType::get({n}, b.getF32Type());
    Value other;
    if (mask)
      other = arith::ConstantOp::create(b, 
          loc, DenseElementsAttr::get(f32s, ArrayRef<float>{0.0f}));
    Value bias = tt::LoadOp::create(b, loc, ptrs, mask, other,
                                    /*boundaryCheck=*/ArrayRef<int32_t>{},
                                    /*padding=*/tt::PaddingOptionAttr());
    if (match.base2)
      bias = arith::MulFOp::create(b, 
          loc, bias,
          arith::ConstantOp::create(b, 
              loc, DenseElementsAttr::get(
                       f32s, ArrayRef<float>{llvm::numbers::log2ef})));
    Value logits = match.expArgument.getLhs();
    auto scoreType = cast<RankedTensorType>(logits.getType());
    if (scoreType.getRank() == 2) {
      int32_t axis = 1 - match.scoreKeyDim;
      SmallVector<int64_t> shape{n, n};
      shape[axis] = 1;
      shape[match.scoreKeyDim] = n;
      bias = tt::ExpandDimsOp::create(b, 
          loc, RankedTensorType::get(shape, b.getF32Type()), bias, axis);
      bias = tt::BroadcastOp::create(b, loc, scoreType, bias);
    }
    Value biased = arith::AddFOp::create(b, loc, logits, bias);
    match.expArgument.getLhsMutable().assign(biased);
  }
};

struct TritonWeightedAttentionPass
    : balancekv::impl::BalanceKVTritonWeightedAttentionPassBase<
          TritonWeightedAttentionPass> {
  using Base::Base;

  void runOnOperation() override {
    getOperation()->walk([&](tt::FuncOp func) {
      if (func.isExternal())
        return;
      std::string why;
      if (failed(rewriteTritonAttentionKernel(func, &why)) && remarks)
        func.emitRemark() << "balancekv-triton-weighted-attention: kernel @"
                          << func.getSymName() << " left as it is: " << why;
    });
  }
};

} // namespace

LogicalResult balancekv::rewriteTritonAttentionKernel(tt::FuncOp func,
                                                      std::string *whyNot) {
  Why why;
  auto fail = [&](Why reason) {
    if (whyNot)
      *whyNot = std::move(reason);
    return failure();
  };
  if (func->hasAttr(kRewrittenAttr))
    return fail("already rewritten (it takes log-weights: " +
                kRewrittenAttr.str() + ")");
  if (!func.isPublic())
    return fail("not a public kernel (its callers would need the new "
                "arguments)");
  // TTGIR: the new tensors would need layouts; rewrite the TTIR instead.
  WalkResult laidOut = func.walk([](Operation *op) {
    for (Type t : op->getResultTypes())
      if (auto tensor = dyn_cast<RankedTensorType>(t); tensor && tensor.getEncoding())
        return WalkResult::interrupt();
    return WalkResult::advance();
  });
  if (laidOut.wasInterrupted())
    return fail("its tensors carry TritonGPU layouts (TTGIR): rewrite the "
                "kernel's TTIR, before Triton converts it to TTGIR");
  SmallVector<AttentionLoop> loops;
  WalkResult walk = func.walk([&](scf::ForOp loop) {
    if (!looksLikeAttention(loop))
      return WalkResult::advance();
    FailureOr<AttentionLoop> match = matchAttentionLoop(loop, why);
    if (failed(match))
      return WalkResult::interrupt();
    loops.push_back(*match);
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return fail(why);
  if (loops.empty())
    return fail("no loop with a QK product and an exp");
  if (failed(KernelRewriter(func).run(loops, why)))
    return fail(why);
  // Marks the kernel, so that a second run leaves it alone (Triton keeps a
  // discardable attribute of a dialect it does not know).
  func->setAttr(kRewrittenAttr, UnitAttr::get(func.getContext()));
  return success();
}
