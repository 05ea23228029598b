// `herald outbox-relay` as a sidecar process. This executable doubles as the
// sidecar: with "outbox-relay ..." arguments it runs the CLI subcommand
// exactly as `herald` does (same add_outbox_relay_command), otherwise it runs
// the tests, which start it as a separate process next to a "service" (the
// test itself) that commits events through the Outbox.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <thread>

#include "cli/outbox_relay.h"
#include "sdk/outbox/outbox.h"
#include "sdk_test_util.h"

namespace herald::sdk {
namespace {

using namespace std::chrono_literals;

int run_cli(std::vector<std::string> args) {
  CLI::App app{"herald (test)"};
  app.require_subcommand(1);
  std::function<int()> action;
  cli::add_outbox_relay_command(app, action);
  std::vector<const char*> argv{"herald"};
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return action ? action() : 2;
}

pid_t spawn(const std::vector<std::string>& args) {
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv{const_cast<char*>(self.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(self.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

class RelayCliTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    broker_ = testing::TestBroker::start();
    if (GetParam() == "postgres") {
      pg_ = testing::PgDatabase::create("cli");
      url_ = pg_->url();
    } else {
      url_ = "sqlite:" + (dir_.path() / "svc.db").string();
    }
    auto s = Store::open(url_);
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
  }
  void commit_events(int from, int to) {
    Outbox outbox({.topic = "sidecar", .source = "/svc"});
    for (int i = from; i <= to; ++i) {
      ASSERT_TRUE(store_->run([&](Tx& tx) -> Result<void> {
        auto ev = Event::json("svc.changed", "", "k" + std::to_string(i % 3), {{"i", i}});
        return outbox.add(tx, std::move(ev)).has_value()
                   ? ok()
                   : Result<void>(Error{Errc::kIoError, "add"});
      }));
    }
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::TestBroker> broker_;
  std::unique_ptr<testing::PgDatabase> pg_;
  std::string url_;
  std::unique_ptr<Store> store_;
};

TEST_P(RelayCliTest, SidecarPublishesWhatTheServiceCommitsAndExitsCleanlyOnSigterm) {
  commit_events(1, 50);
  pid_t pid = spawn({"outbox-relay", "--db", url_, "--brokers", broker_->brokers(),
                     "--max-poll-ms", "20", "--log-level", "warn"});
  auto first = testing::read_topic(broker_->brokers(), "sidecar", 50, 30s);
  ASSERT_TRUE(first) << first.error().to_string();
  commit_events(51, 120);  // while the sidecar runs: it notices (poll / NOTIFY)
  auto all = testing::read_topic(broker_->brokers(), "sidecar", 120, 30s);
  ASSERT_TRUE(all) << all.error().to_string();
  EXPECT_EQ(all->size(), 120u);
  for (int i = 0; i < 100 && outbox_pending(*store_).value() > 0; ++i) std::this_thread::sleep_for(50ms);
  EXPECT_EQ(outbox_pending(*store_).value(), 0);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_P(RelayCliTest, OncePublishesEverythingPendingAndExits) {
  commit_events(1, 30);
  EXPECT_EQ(run_cli({"outbox-relay", "--db", url_, "--brokers", broker_->brokers(), "--once"}), 0);
  EXPECT_EQ(outbox_pending(*store_).value(), 0);
  auto recs = testing::read_topic(broker_->brokers(), "sidecar", 30, 30s);
  ASSERT_TRUE(recs);
  EXPECT_EQ(recs->size(), 30u);
}

// --once waits for no signal: SIGTERM ends it at once (default action), even
// while it is stuck on an unreachable broker; the rows stay in the outbox.
TEST_P(RelayCliTest, OnceEndsOnSigtermWhileTheBrokerIsUnreachable) {
  commit_events(1, 5);
  pid_t pid = spawn({"outbox-relay", "--db", url_, "--brokers", "127.0.0.1:1", "--once",
                     "--delivery-timeout", "60", "--once-timeout", "120", "--log-level", "error"});
  std::this_thread::sleep_for(1s);  // stuck in its first round
  ::kill(pid, SIGTERM);
  int status = 0;
  pid_t done = 0;
  for (int i = 0; i < 100 && done == 0; ++i) {
    done = ::waitpid(pid, &status, WNOHANG);
    if (done == 0) std::this_thread::sleep_for(50ms);
  }
  if (done == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    FAIL() << "outbox-relay --once ignored SIGTERM";
  }
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
  EXPECT_EQ(outbox_pending(*store_).value(), 5);
}

TEST_P(RelayCliTest, BadArgumentsExitWithTwo) {
  EXPECT_EQ(run_cli({"outbox-relay", "--brokers", broker_->brokers()}), 2);  // no --db
  EXPECT_EQ(run_cli({"outbox-relay", "--db", url_, "-X", "novalue", "--once"}), 2);
  EXPECT_EQ(run_cli({"outbox-relay", "--db", url_, "-X", "no.such.setting=1", "--once"}), 2);
  EXPECT_EQ(run_cli({"outbox-relay", "--db", "sqlite:/nonexistent/dir/x.db", "--once"}), 1);
  // A mistyped path is not an empty outbox: the relay creates no database.
  const auto typo = dir_.path() / "svc-typo.db";
  EXPECT_EQ(run_cli({"outbox-relay", "--db", "sqlite:" + typo.string(), "--once"}), 1);
  EXPECT_FALSE(std::filesystem::exists(typo));
}

INSTANTIATE_TEST_SUITE_P(Sqlite, RelayCliTest, ::testing::Values("sqlite"));
INSTANTIATE_TEST_SUITE_P(Postgres, RelayCliTest, ::testing::Values("postgres"));

}  // namespace
}  // namespace herald::sdk

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "outbox-relay") {
    return herald::sdk::run_cli(std::vector<std::string>(argv + 1, argv + argc));
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
