// SIGINT/SIGTERM handling of the long-running commands (serve, outbox-relay):
// call block_stop_signals() before starting any thread, so that every thread
// (librdkafka's included) inherits the mask, then sigwait() on the returned
// set in the main thread. SIGPIPE is ignored (a peer closing is an error
// return, not a signal).
#pragma once

#include <pthread.h>

#include <csignal>

namespace herald::cli {

inline sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return set;
}

}  // namespace herald::cli
