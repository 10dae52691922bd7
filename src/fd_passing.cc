// AF_UNIX sockets and SCM_RIGHTS: how dma-buf fds travel between processes.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <vector>

#include "addon.h"
#include "args.h"

#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04  // Linux 6.5+: a pidfd the kernel installs; never ours to keep
#endif

namespace {

constexpr int kSockFlags = SOCK_CLOEXEC | SOCK_NONBLOCK;
constexpr size_t kMaxFds = 253;  // SCM_MAX_FD: the kernel never passes more
constexpr size_t kMaxPayload = 64 << 20;  // far above net.core.wmem_max defaults

// Closes received fds unless released: no leak if building the result throws.
struct FdGuard {
  std::vector<int> fds;
  ~FdGuard() {
    for (int fd : fds) ::close(fd);
  }
};

// Path (or abstract name, leading NUL) -> sockaddr_un; refuses what does not fit.
socklen_t UnixAddress(Napi::Env env, const std::string& path, const char* syscall, sockaddr_un* sa) {
  std::memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  bool abstract = !path.empty() && path[0] == '\0';
  size_t room = sizeof sa->sun_path - (abstract ? 0 : 1);
  if (path.size() > room) ThrowErrno(env, ENAMETOOLONG, syscall, path.c_str());
  std::memcpy(sa->sun_path, path.data(), path.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
}

// Control buffer of cmsghdr alignment for n fds.
std::vector<cmsghdr> ControlBuffer(size_t nfds) {
  size_t bytes = CMSG_SPACE(nfds * sizeof(int));
  return std::vector<cmsghdr>((bytes + sizeof(cmsghdr) - 1) / sizeof(cmsghdr));
}

}  // namespace

Napi::Value DmaHeapAddon::Socket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int type = IntArg(info, 0, "type");
  return NewFd(env, ::socket(AF_UNIX, type | kSockFlags, 0), "socket");
}

Napi::Value DmaHeapAddon::Socketpair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int type = IntArg(info, 0, "type");
  int sv[2];
  if (::socketpair(AF_UNIX, type | kSockFlags, 0, sv) != 0) ThrowErrno(env, errno, "socketpair");
  Own(sv[0]);
  Own(sv[1]);
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(0u, Napi::Number::New(env, sv[0]));
  pair.Set(1u, Napi::Number::New(env, sv[1]));
  return pair;
}

Napi::Value DmaHeapAddon::Bind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  std::string path = StringArg(info, 1, "path");
  sockaddr_un sa;
  socklen_t len = UnixAddress(env, path, "bind", &sa);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0) ThrowErrno(env, errno, "bind", path.c_str());
  return env.Undefined();
}

Napi::Value DmaHeapAddon::Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  int backlog = IntArg(info, 1, "backlog");
  if (::listen(fd, backlog) != 0) ThrowErrno(env, errno, "listen");
  return env.Undefined();
}

Napi::Value DmaHeapAddon::Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  return NewFd(env, ::accept4(fd, nullptr, nullptr, kSockFlags), "accept");
}

Napi::Value DmaHeapAddon::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  std::string path = StringArg(info, 1, "path");
  sockaddr_un sa;
  socklen_t len = UnixAddress(env, path, "connect", &sa);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0)
    ThrowErrno(env, errno, "connect", path.c_str());
  return env.Undefined();
}

// SO_PEERCRED: the peer's pid, uid and gid as the kernel recorded them at connect() (or
// socketpair()); the caller decides what they are worth.
Napi::Value DmaHeapAddon::PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) ThrowErrno(env, errno, "getsockopt");
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, cred.pid));
  result.Set("uid", Napi::Number::New(env, cred.uid));
  result.Set("gid", Napi::Number::New(env, cred.gid));
  return result;
}

Napi::Value DmaHeapAddon::SendFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  Napi::Uint8Array payload = BytesArg(info, 1, "payload");
  if (!info[2].IsArray()) ThrowArg(env, "type", "fds", "an instance of Array", info[2]);
  Napi::Array list = info[2].As<Napi::Array>();
  std::vector<int> fds;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1.0;
    if (!(d >= 0 && d <= INT32_MAX) || std::trunc(d) != d) ThrowArg(env, "range", "fds[" + std::to_string(i) + "]", "an integer >= 0 && <= 2147483647", v);
    fds.push_back(static_cast<int>(d));
  }

  iovec iov{payload.ByteLength() ? payload.Data() : nullptr, payload.ByteLength()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<cmsghdr> control;
  if (!fds.empty()) {
    control = ControlBuffer(fds.size());
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  ssize_t r = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (r < 0) ThrowErrno(env, errno, "sendmsg");
  return Napi::Number::New(env, static_cast<double>(r));
}

Napi::Value DmaHeapAddon::RecvFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  size_t max_payload = SizeArg(info, 1, "maxPayload");
  // A datagram can't exceed the socket's buffer; a larger request would only throw bad_alloc.
  if (max_payload > kMaxPayload) throw Napi::RangeError::New(env, "maxPayload is larger than any socket message");
  size_t max_fds = std::min<uint64_t>(SizeArg(info, 2, "maxFds"), kMaxFds);

  std::vector<uint8_t> data(max_payload);
  iovec iov{data.data(), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<cmsghdr> control;
  if (max_fds) {
    control = ControlBuffer(max_fds);
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(max_fds * sizeof(int));
  }
  ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0) ThrowErrno(env, errno, "recvmsg");

  FdGuard got;
  bool foreign = false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    const unsigned char* p = CMSG_DATA(c);
    const unsigned char* end = reinterpret_cast<const unsigned char*>(control.data()) + msg.msg_controllen;
    if (c->cmsg_len < CMSG_LEN(0) || p > end) break;
    size_t count = std::min<size_t>(c->cmsg_len - CMSG_LEN(0), end - p) / sizeof(int);
    if (c->cmsg_level == SOL_SOCKET && (c->cmsg_type == SCM_RIGHTS || c->cmsg_type == SCM_PIDFD)) {
      for (size_t i = 0; i < count; i++) {
        int rfd;
        std::memcpy(&rfd, p + i * sizeof(int), sizeof rfd);
        if (c->cmsg_type == SCM_RIGHTS)
          got.fds.push_back(rfd);
        else
          ::close(rfd);
      }
    }
    if (!(c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)) foreign = true;
  }

  bool eof = false;
  if (n == 0 && got.fds.empty() && max_payload > 0 && !(msg.msg_flags & MSG_CTRUNC)) {
    int type = 0;
    socklen_t tlen = sizeof type;
    eof = ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type != SOCK_DGRAM;
  }

  Napi::Object result = Napi::Object::New(env);
  result.Set("payload", Napi::Buffer<uint8_t>::Copy(env, data.data(), static_cast<size_t>(n)));
  Napi::Array fds = Napi::Array::New(env, got.fds.size());
  for (uint32_t i = 0; i < got.fds.size(); i++) fds.Set(i, Napi::Number::New(env, got.fds[i]));
  result.Set("fds", fds);
  result.Set("truncated", Napi::Boolean::New(env, msg.msg_flags & MSG_TRUNC));
  result.Set("controlTruncated", Napi::Boolean::New(env, msg.msg_flags & MSG_CTRUNC));
  result.Set("foreignControl", Napi::Boolean::New(env, foreign));
  result.Set("eof", Napi::Boolean::New(env, eof));

  for (int rfd : got.fds) Own(rfd);
  got.fds.clear();  // handed over
  return result;
}
