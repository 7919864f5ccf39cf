//===- Datasets.cpp - inputs for balancekv-eval ---------------------------===//

#include "Datasets.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

using namespace balancekv::reference;

namespace balancekv::eval {

namespace {

using Vec = std::vector<double>;

void normalize(Vec &v, double norm) {
  double s = 0;
  for (double x : v)
    s += x * x;
  s = std::sqrt(s);
  for (double &x : v)
    x *= s > 0 ? norm / s : 0.0;
}

Vec gaussianVec(std::mt19937_64 &rng, int64_t d, double sd = 1.0) {
  std::normal_distribution<double> nd(0.0, sd);
  Vec v(d);
  for (double &x : v)
    x = nd(rng);
  return v;
}

/// Rotary embedding on the first `rot` dims (pairs 2j, 2j+1), base 10000.
void rotate(Vec &v, int64_t rot, int64_t pos) {
  for (int64_t j = 0; j + 1 < rot; j += 2) {
    double theta = double(pos) * std::pow(10000.0, -double(j) / double(rot));
    double c = std::cos(theta), s = std::sin(theta);
    double a = v[j], b = v[j + 1];
    v[j] = a * c - b * s;
    v[j + 1] = a * s + b * c;
  }
}

void store(Tensor &t, int64_t row, const Vec &v) {
  for (size_t x = 0; x < v.size(); ++x)
    t.set(row * int64_t(v.size()) + int64_t(x), float(v[x]));
}

} // namespace

Instance makeGaussian(int64_t heads, int64_t tokens, int64_t dim,
                      int64_t queries, uint64_t seed) {
  Instance in{Tensor(DType::F32, {1, heads, queries, dim}),
              Tensor(DType::F32, {1, heads, tokens, dim}),
              Tensor(DType::F32, {1, heads, tokens, dim})};
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 1);
  std::normal_distribution<float> nd;
  for (Tensor *t : {&in.query, &in.key, &in.value})
    for (int64_t i = 0; i < t->numElements(); ++i)
      t->set(i, nd(rng));
  return in;
}

Instance makeSyntheticLLM(int64_t heads, int64_t tokens, int64_t dim,
                          int64_t queries, uint64_t seed) {
  Instance in{Tensor(DType::F32, {1, heads, queries, dim}),
              Tensor(DType::F32, {1, heads, tokens, dim}),
              Tensor(DType::F32, {1, heads, tokens, dim})};
  const int64_t rot = dim / 2; // partial RoPE: the upper half is unrotated
  const int64_t topics = 16, sinks = 4;
  const double rho = 0.95; // AR(1) drift: nearby tokens correlate
  for (int64_t h = 0; h < heads; ++h) {
    std::mt19937_64 rng((seed << 20) ^ (uint64_t(h) * 0x9E3779B97F4A7C15ull));
    std::uniform_real_distribution<double> unif(0.0, 1.0);
    std::vector<Vec> centroid;
    for (int64_t c = 0; c < topics; ++c) {
      centroid.push_back(gaussianVec(rng, dim));
      normalize(centroid.back(), 1.0);
    }
    // Unrotated directions: u carries the sinks, g the heavy hitters.
    Vec u(dim, 0.0), g(dim, 0.0);
    u[dim - 1] = 1.0;
    g[dim - 2] = 1.0;
    // Values: a fixed random map of the content plus noise.
    std::vector<Vec> valueMap(dim);
    for (Vec &row : valueMap)
      row = gaussianVec(rng, dim, 1.0 / std::sqrt(double(dim)));

    Vec drift = gaussianVec(rng, dim, 1.0 / std::sqrt(double(dim)));
    int64_t topic = 0;
    const int64_t firstQuery = tokens - queries;
    for (int64_t t = 0; t < tokens; ++t) {
      if (unif(rng) < 1.0 / 200.0)
        topic = int64_t(unif(rng) * topics) % topics;
      Vec eps = gaussianVec(rng, dim, 1.0 / std::sqrt(double(dim)));
      for (int64_t x = 0; x < dim; ++x)
        drift[x] = rho * drift[x] + std::sqrt(1 - rho * rho) * eps[x];
      Vec content(dim);
      for (int64_t x = 0; x < dim; ++x)
        content[x] = 0.7 * centroid[topic][x] + 0.6 * drift[x] +
                     0.3 * eps[x];
      normalize(content, 1.0);

      // Keys: norm ~15; sinks point along u, heavy hitters (1%) along g.
      Vec k = content;
      if (t < sinks) {
        for (int64_t x = 0; x < dim; ++x)
          k[x] = 0.3 * content[x] + 0.95 * u[x];
      } else if (unif(rng) < 0.01) {
        for (int64_t x = 0; x < dim; ++x)
          k[x] = 0.6 * content[x] + 0.6 * g[x];
      }
      normalize(k, 15.0 * (0.9 + 0.2 * unif(rng)));
      rotate(k, rot, t);
      store(in.key, h * tokens + t, k);

      // Values: norm ~3.
      Vec v(dim, 0.0);
      for (int64_t r = 0; r < dim; ++r)
        for (int64_t x = 0; x < dim; ++x)
          v[r] += valueMap[r][x] * content[x];
      Vec vnoise = gaussianVec(rng, dim, 0.5 / std::sqrt(double(dim)));
      for (int64_t x = 0; x < dim; ++x)
        v[x] += vnoise[x];
      normalize(v, 3.0 * (0.9 + 0.2 * unif(rng)));
      store(in.value, h * tokens + t, v);

      // Queries: the last positions, same content process plus a shared
      // component towards the sinks and the heavy hitters.
      if (t >= firstQuery) {
        Vec q(dim);
        Vec qn = gaussianVec(rng, dim, 0.3 / std::sqrt(double(dim)));
        for (int64_t x = 0; x < dim; ++x)
          q[x] = 0.6 * content[x] + 0.5 * u[x] + 0.4 * g[x] + qn[x];
        normalize(q, 8.0);
        rotate(q, rot, t);
        store(in.query, h * queries + (t - firstQuery), q);
      }
    }
  }
  return in;
}

//===----------------------------------------------------------------------===//
// NumPy .npy
//===----------------------------------------------------------------------===//

std::string readNpy(const std::string &path, Tensor &out) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    return "cannot open " + path;
  f.seekg(0, std::ios::end);
  const std::streamoff fileSize = f.tellg();
  f.seekg(0);
  char magic[8];
  if (!f.read(magic, 8) || magic[0] != '\x93' ||
      std::string(magic + 1, 5) != "NUMPY")
    return path + ": not a .npy file";
  // Versions 1.0 (2-byte header length), 2.0 and 3.0 (4 bytes; 3.0 only
  // allows UTF-8 in the header).
  const int major = static_cast<unsigned char>(magic[6]),
            minor = static_cast<unsigned char>(magic[7]);
  if (major < 1 || major > 3 || minor != 0)
    return path + ": unsupported .npy version " + std::to_string(major) + "." +
           std::to_string(minor) + " (expected 1.0, 2.0 or 3.0)";
  uint32_t headerLen = 0;
  unsigned char b[4] = {0, 0, 0, 0};
  if (!f.read(reinterpret_cast<char *>(b), major == 1 ? 2 : 4))
    return path + ": truncated header";
  headerLen = b[0] | (b[1] << 8) | (b[2] << 16) | (uint32_t(b[3]) << 24);
  if (headerLen > (1u << 20))
    return path + ": header of " + std::to_string(headerLen) +
           " bytes is not plausible";
  std::string header(headerLen, '\0');
  if (!f.read(header.data(), headerLen))
    return path + ": truncated header";
  std::smatch m;
  if (!std::regex_search(header, m,
                         std::regex("'descr':\\s*'([<|=>])([fi])(\\d)'")))
    return path + ": no dtype in header";
  if (m[1] == ">")
    return path + ": big-endian arrays are not supported";
  DType dtype;
  if (m[2] == "f" && m[3] == "4")
    dtype = DType::F32;
  else if (m[2] == "f" && m[3] == "2")
    dtype = DType::F16;
  else
    return path + ": dtype must be float16 or float32";
  if (std::regex_search(header, std::regex("'fortran_order':\\s*True")))
    return path + ": Fortran-order arrays are not supported";
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)")))
    return path + ": no shape in header";
  // Each entry a non-negative decimal integer; "(3,)" has a trailing comma.
  std::vector<int64_t> shape;
  std::string dims = m[1];
  std::stringstream entries(dims);
  std::string entry;
  uint64_t elements = 1;
  bool sawEmpty = false;
  while (std::getline(entries, entry, ',')) {
    entry.erase(0, entry.find_first_not_of(" \t"));
    entry.erase(entry.find_last_not_of(" \t") + 1);
    if (entry.empty()) {
      sawEmpty = true;
      continue;
    }
    if (sawEmpty || entry.size() > 18 ||
        entry.find_first_not_of("0123456789") != std::string::npos)
      return path + ": bad shape entry '" + entry + "' in (" + dims + ")";
    const int64_t dim = std::stoll(entry);
    if (dim != 0 && elements > (uint64_t(1) << 62) / uint64_t(dim))
      return path + ": shape (" + dims + ") is too large";
    elements *= uint64_t(dim);
    shape.push_back(dim);
  }
  // Compare with what the file holds before allocating anything.
  const uint64_t dataBytes = elements * uint64_t(dtypeSize(dtype));
  const std::streamoff offset = f.tellg();
  if (fileSize < offset || uint64_t(fileSize - offset) != dataBytes)
    return path + ": shape (" + dims + ") needs " + std::to_string(dataBytes) +
           " data bytes, the file has " +
           std::to_string(fileSize < offset ? 0 : fileSize - offset);
  out = Tensor(dtype, shape);
  if (!f.read(reinterpret_cast<char *>(out.bytes.data()),
              std::streamsize(out.bytes.size())))
    return path + ": truncated data";
  return "";
}

std::string writeNpy(const std::string &path, const Tensor &t) {
  std::ostringstream h;
  h << "{'descr': '<f" << dtypeSize(t.dtype)
    << "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < t.shape.size(); ++i)
    h << t.shape[i] << (t.shape.size() == 1 || i + 1 < t.shape.size() ? ", " : "");
  h << "), }";
  std::string header = h.str();
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream f(path, std::ios::binary);
  if (!f)
    return "cannot write " + path;
  const char magic[] = "\x93NUMPY\x01\x00";
  f.write(magic, 8);
  uint16_t len = uint16_t(header.size());
  f.put(char(len & 0xff));
  f.put(char(len >> 8));
  f.write(header.data(), std::streamsize(header.size()));
  f.write(reinterpret_cast<const char *>(t.bytes.data()),
          std::streamsize(t.bytes.size()));
  return f ? "" : "write failed: " + path;
}

std::string loadKV(const std::string &prefix, int64_t queries, Instance &out) {
  Tensor q, k, v;
  for (auto [t, suffix] : {std::pair<Tensor *, const char *>{&q, "_q.npy"},
                           {&k, "_k.npy"}, {&v, "_v.npy"}}) {
    std::string err = readNpy(prefix + suffix, *t);
    if (!err.empty())
      return err;
    if (t->shape.size() != 3)
      return prefix + suffix + ": expected [heads, tokens, dim]";
  }
  const int64_t hq = q.shape[0], hkv = k.shape[0], n = k.shape[1],
                d = k.shape[2];
  if (v.shape[0] != hkv || v.shape[1] != n)
    return "k and v disagree on heads or tokens";
  if (q.shape[2] != d || q.shape[1] > n)
    return "q must be [Hq, T, dim] with the key's dim and T <= tokens (the "
           "last T positions)";
  if (hq < 1 || hkv < 1 || n < 1 || d < 1 || v.shape[2] < 1)
    return "heads, tokens and dims must be >= 1, got q (" + std::to_string(hq) +
           ", " + std::to_string(n) + ", " + std::to_string(d) + "), v dim " +
           std::to_string(v.shape[2]);
  if (hq % hkv)
    return "q heads must be a multiple of kv heads";
  // The relative error of non-finite attention means nothing.
  for (auto [t, suffix] : {std::pair<Tensor *, const char *>{&q, "_q.npy"},
                           {&k, "_k.npy"},
                           {&v, "_v.npy"}})
    for (int64_t i = 0, e = t->numElements(); i < e; ++i)
      if (!std::isfinite(t->at(i)))
        return prefix + suffix + ": element " + std::to_string(i) +
               " is not finite";
  const int64_t t = q.shape[1];
  if (queries < 1 || queries > t)
    return "--queries must be in [1, " + std::to_string(t) +
           "] (the rows of q)";
  // Keep storage type; lift to rank 4 with batch 1.
  out.key = k;
  out.key.shape.insert(out.key.shape.begin(), 1);
  out.value = v;
  out.value.shape.insert(out.value.shape.begin(), 1);
  out.allQueries = q;
  out.allQueries.shape.insert(out.allQueries.shape.begin(), 1);
  out.query = sliceRows(out.allQueries, t - queries, t);
  return "";
}

Tensor sliceRows(const Tensor &t, int64_t begin, int64_t end) {
  const int64_t h = t.shape[1], s = t.shape[2], d = t.shape[3];
  const int64_t es = dtypeSize(t.dtype);
  Tensor out(t.dtype, {1, h, end - begin, d});
  for (int64_t i = 0; i < h; ++i)
    std::copy_n(t.bytes.data() + ((i * s + begin) * d) * es,
                (end - begin) * d * es,
                out.bytes.data() + (i * (end - begin) * d) * es);
  return out;
}

Tensor concatRows(const Tensor &a, const Tensor &b) {
  const int64_t h = a.shape[1], sa = a.shape[2], sb = b.shape[2],
                d = a.shape[3];
  const int64_t es = dtypeSize(a.dtype);
  Tensor out(a.dtype, {1, h, sa + sb, d});
  for (int64_t i = 0; i < h; ++i) {
    uint8_t *dst = out.bytes.data() + (i * (sa + sb) * d) * es;
    std::copy_n(a.bytes.data() + (i * sa * d) * es, sa * d * es, dst);
    std::copy_n(b.bytes.data() + (i * sb * d) * es, sb * d * es,
                dst + sa * d * es);
  }
  return out;
}

} // namespace balancekv::eval
