// The kiln Node-API addon: one context per environment (context-aware, loads in worker_threads).
#include "context.h"

namespace kiln {
namespace native {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<Context>(new Context());
  register_memory(env, exports);
  register_elementwise(env, exports);
  register_ops(env, exports);
  register_optim(env, exports);
  for (Registrar r : registrars()) r(env, exports);
  return exports;
}

std::vector<Registrar>& registrars() {
  static std::vector<Registrar> list;
  return list;
}

NODE_API_MODULE(kiln, Init)

}  // namespace native
}  // namespace kiln
