// Flat parameter and gradient storage.
#include "runtime/train/flat_parameters.h"

#include "runtime/device/device_memory.h"

namespace tessera {

FlatParameters::FlatParameters(const std::vector<Model*>& chunks, int pad_to, Device device) {
  const int64_t align = device.is_cpu() ? 1 : 64;
  std::vector<Layer*> layers;
  for (Model* m : chunks) {
    for (auto& l : m->layers()) layers.push_back(l.get());
  }
  int64_t total = 0;
  for (int l = static_cast<int>(layers.size()) - 1; l >= 0; --l) {
    for (Parameter* p : layers[l]->parameters()) {
      total = (total + align - 1) / align * align;
      segments_.push_back({p, l, total, p->value.numel()});
      total += p->value.numel();
    }
  }
  const int64_t padded = (total + pad_to - 1) / pad_to * pad_to;
  // The layers' own gradients (zeros) go first and each value as soon as it is copied, so the
  // set-up holds twice the parameters at most, as the steps do, not four times.
  for (const FlatSegment& s : segments_) s.param->grad = Tensor();
  values_ = Tensor::zeros({padded}, DType::F32, device);
  for (const FlatSegment& s : segments_) {
    Tensor v = values_.narrow(s.offset, s.numel).view(s.param->value.shape());
    copy_tensor(v, s.param->value);
    s.param->value = v;
  }
  grads_ = Tensor::zeros({padded}, DType::F32, device);
  for (const FlatSegment& s : segments_) {
    s.param->grad = grads_.narrow(s.offset, s.numel).view(s.param->value.shape());
  }
}

}  // namespace tessera
