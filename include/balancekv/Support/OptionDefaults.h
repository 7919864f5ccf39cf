//===- OptionDefaults.h - pass options that say their default --*- C++ -*-===//
//
// MLIR's pass-option help prints no default values; a pass calls
// showDefault(option) on its options (in its constructor) so that
// `balancekv-opt --help` shows "(default: ...)" after each description. The
// value shown is the option's initial one, i.e. the one place it is defined
// (CompressParams.h, CompressKVCacheOptions, ...).
//
//===----------------------------------------------------------------------===//
#ifndef BALANCEKV_SUPPORT_OPTIONDEFAULTS_H
#define BALANCEKV_SUPPORT_OPTIONDEFAULTS_H

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <mutex>
#include <string>
#include <type_traits>

namespace balancekv {

template <typename OptionT>
void showDefault(OptionT &option) {
  // Interned: help strings must outlive the options, and every instance of
  // a pass makes the same ones.
  static std::mutex mutex;
  static llvm::StringSet<> texts;
  std::string text;
  llvm::raw_string_ostream os(text);
  os << option.HelpStr << " (default: ";
  using T = std::decay_t<decltype(option.getValue())>;
  if constexpr (std::is_same_v<T, bool>)
    os << (option.getValue() ? "true" : "false");
  else if constexpr (std::is_floating_point_v<T>)
    os << llvm::format("%g", double(option.getValue()));
  else if constexpr (std::is_same_v<T, std::string>)
    os << (option.getValue().empty() ? "\"\"" : option.getValue());
  else
    os << option.getValue();
  os << ")";
  std::lock_guard<std::mutex> lock(mutex);
  option.setDescription(texts.insert(text).first->getKey());
}

} // namespace balancekv

#endif // BALANCEKV_SUPPORT_OPTIONDEFAULTS_H
