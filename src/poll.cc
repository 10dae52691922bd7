// pollNow(fd, events): poll(2) with a zero timeout, the ready subset now.
// poll(fd, events, cb): a uv_poll_t on the env's own loop. The handle must be
// closed before a worker's loop is closed, so each poller registers an async
// cleanup hook that closes it at teardown if stop() was never called.
#include <poll.h>
#include <uv.h>

#include <cerrno>

#include <memory>

#include "addon.h"
#include "args.h"

namespace {

struct PollState {
  uv_poll_t handle;
  napi_env env = nullptr;
  Napi::FunctionReference callback;
  std::unique_ptr<Napi::AsyncContext> context;
  napi_async_cleanup_hook_handle hook = nullptr;
  std::shared_ptr<PollState> self;  // alive until uv says the handle is closed
  bool closing = false;
  bool in_callback = false;

  // stop() and teardown both come here; JS references go now (or when the
  // running callback returns), while the env is certainly alive, so OnClose
  // needs nothing from it.
  void Close() {
    if (closing) return;
    closing = true;
    if (!in_callback) ReleaseJs();
    uv_close(reinterpret_cast<uv_handle_t*>(&handle), OnClose);
  }

  void ReleaseJs() {
    callback.Reset();
    context.reset();
  }

  static void OnClose(uv_handle_t* h) {
    auto* s = static_cast<PollState*>(h->data);
    std::shared_ptr<PollState> last = std::move(s->self);  // freed on return
    if (s->hook) napi_remove_async_cleanup_hook(s->hook);
  }

  static void OnTeardown(napi_async_cleanup_hook_handle /*h*/, void* arg) {
    static_cast<PollState*>(arg)->Close();
  }

  static void OnEvent(uv_poll_t* h, int status, int events) {
    auto* s = static_cast<PollState*>(h->data);
    if (s->closing) return;
    Napi::Env env(s->env);
    // A terminating worker still runs its loop but refuses calls into JS:
    // then nothing can be reported, and nothing must abort.
    try {
      Napi::HandleScope scope(env);
      napi_value argv[2] = {
          status < 0 ? ErrnoError(env, -status, "poll").Value() : env.Null(),
          Napi::Number::New(env, status < 0 ? 0 : events),
      };
      napi_value result;
      s->in_callback = true;
      napi_status st = napi_make_callback(env, *s->context, env.Global(), s->callback.Value(), 2, argv, &result);
      s->in_callback = false;
      bool pending = false;
      if (st != napi_ok && napi_is_exception_pending(env, &pending) == napi_ok && pending) {
        napi_value exception;
        napi_get_and_clear_last_exception(env, &exception);
        napi_fatal_exception(env, exception);  // the callback threw: 'uncaughtException'
      }
    } catch (const Napi::Error&) {
      s->in_callback = false;
    }
    if (s->closing) s->ReleaseJs();  // stop() was called from the callback
  }
};

}  // namespace

Napi::Value DmaHeapAddon::Poll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  int events = IntArg(info, 1, "events") & (UV_READABLE | UV_WRITABLE | UV_DISCONNECT | UV_PRIORITIZED);
  if (!info[2].IsFunction()) ThrowArg(env, "type", "callback", "of type function", info[2]);

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env);
  auto s = std::make_shared<PollState>();
  s->env = env;
  s->callback = Napi::Persistent(info[2].As<Napi::Function>());
  s->context = std::make_unique<Napi::AsyncContext>(env, "dma-heap:poll");
  int r = uv_poll_init(loop, &s->handle, fd);  // nothing to close when this fails
  if (r != 0) ThrowErrno(env, -r, "poll");
  s->handle.data = s.get();
  s->self = s;
  if (napi_add_async_cleanup_hook(env, PollState::OnTeardown, s.get(), &s->hook) != napi_ok) {
    s->Close();
    throw Napi::Error::New(env);
  }
  r = uv_poll_start(&s->handle, events, PollState::OnEvent);
  if (r != 0) {
    s->Close();
    ThrowErrno(env, -r, "poll");
  }

  Napi::Object poller = Napi::Object::New(env);
  poller.Set("stop", Napi::Function::New(env, [s](const Napi::CallbackInfo&) { s->Close(); }, "stop"));
  return poller;
}

// One poll(2) that never waits: which of `events` (POLLIN, POLLOUT...) are ready,
// plus POLLERR/POLLHUP/POLLNVAL. On a dma-buf this is dma_buf_poll's answer.
Napi::Value DmaHeapAddon::PollNow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct pollfd p = {};
  p.fd = FdArg(info, 0);
  p.events = static_cast<short>(IntArg(info, 1, "events"));
  int r;
  do {
    r = ::poll(&p, 1, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0) ThrowErrno(env, errno, "poll");
  return Napi::Number::New(env, r == 0 ? 0 : p.revents);
}
