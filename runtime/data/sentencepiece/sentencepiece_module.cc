// The only code that calls libsentencepiece, built as a module (libtessera_sentencepiece.so)
// that tokenizer.cc loads with dlopen(RTLD_DEEPBIND). Why a module: Debian's libsentencepiece
// carries its own copy of protobuf-lite 3.14 and exports it, while the ONNX export links the
// system libprotobuf 3.21; in one link map the two copies' symbols collide (sentencepiece's
// version check aborts, or ONNX binds to the old copy). Loaded with DEEPBIND, the module and
// libsentencepiece resolve protobuf to their own copy first. The functions take standard
// library types: both sides share one libstdc++.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <string>
#include <unordered_map>
#include <vector>

extern "C" {

void* tessera_spm_open(const std::string* path, std::string* error) {
  auto* sp = new sentencepiece::SentencePieceProcessor();
  const auto status = sp->Load(*path);
  if (status.ok()) return sp;
  *error = status.ToString();
  delete sp;
  return nullptr;
}

void tessera_spm_close(void* sp) { delete static_cast<sentencepiece::SentencePieceProcessor*>(sp); }

// size, bos id, eos id (-1 when absent).
void tessera_spm_info(void* sp, int* size, int* bos, int* eos) {
  const auto* p = static_cast<sentencepiece::SentencePieceProcessor*>(sp);
  *size = p->GetPieceSize();
  *bos = p->bos_id();
  *eos = p->eos_id();
}

bool tessera_spm_encode(void* sp, const std::string* text, std::vector<int>* ids, std::string* error) {
  const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(sp)->Encode(*text, ids);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

bool tessera_spm_decode(void* sp, const std::vector<int>* ids, std::string* text, std::string* error) {
  const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(sp)->Decode(*ids, text);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

bool tessera_spm_train(const std::unordered_map<std::string, std::string>* args, std::string* error) {
  const auto status = sentencepiece::SentencePieceTrainer::Train(*args);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

}  // extern "C"
