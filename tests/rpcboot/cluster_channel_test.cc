// The list channel behind zk:// (ClusterChannel): a call that finds no instance while the
// registry is reading a change (an instance registering) waits for that read, within its
// deadline, and is served by the instance it brings; when the read brings none, the call fails
// UNAVAILABLE in the registry's words. Latches, not clocks: the test moves on once the call has
// asked whether a read is in progress.
#include "rpcboot/internal/cluster_channel.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"

namespace rpcboot::internal {
namespace {

// What the registry says about its reads: in progress until the test says otherwise.
struct RegistryReads {
  std::mutex mu;
  std::condition_variable cv;
  bool reading = true;
  int asked = 0;  // how often a call asked

  std::function<bool()> Hook() {
    return [this] {
      std::lock_guard<std::mutex> lock(mu);
      ++asked;
      cv.notify_all();
      return reading;
    };
  }
  // True once a call has asked (it is waiting for the read).
  bool WaitAsked() {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(60), [this] { return asked > 0; });
  }
  void Done() {
    std::lock_guard<std::mutex> lock(mu);
    reading = false;
  }
};

struct Outcome {
  int64_t count = -1;
  StatusCode code = StatusCode::kOk;
  std::string message;
};

class ClusterChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.thrift_port = 0;
    server_ = std::make_unique<Server>(options);
    server_->AddService<rich::RichService>(impl_);
    ASSERT_TRUE(server_->Start().ok());
    address_ = "127.0.0.1:" + std::to_string(server_->thrift_port());
    ChannelOptions channel_options;
    channel_options.default_timeout = std::chrono::seconds(60);  // the latch decides, not a clock
    channel_ = std::make_shared<ClusterChannel>("zk://test/services/rich", Protocol::kThrift,
                                                channel_options);
    channel_->SetReading(reads_.Hook());
    channel_->SetDescriber([] { return std::string("/services/rich lists 0 node(s)"); });
    channel_->Update({}, /*registry_empty=*/true);  // the first view: nothing to call
  }

  // Count() on a thread of its own.
  std::thread CallCount(Outcome* out) {
    auto client = MakeClient<rich::RichService>(channel_);
    return std::thread([client, out] {
      try {
        out->count = client->Count();
      } catch (const RpcError& e) {
        out->code = e.code();
        out->message = e.message();
      }
    });
  }

  std::shared_ptr<testing::RichServiceImpl> impl_ = std::make_shared<testing::RichServiceImpl>();
  std::unique_ptr<Server> server_;
  std::string address_;
  RegistryReads reads_;
  std::shared_ptr<ClusterChannel> channel_;
};

TEST_F(ClusterChannelTest, ACallWithNoInstanceWaitsForTheReadInProgressAndIsServed) {
  Outcome outcome;
  std::thread caller = CallCount(&outcome);
  bool asked = reads_.WaitAsked();
  // The read finds the registering instance; then the registry is done reading.
  channel_->Update({{"rich-1", address_}});
  reads_.Done();
  caller.join();
  ASSERT_TRUE(asked) << "the call never asked whether the registry was reading";
  EXPECT_EQ(outcome.code, StatusCode::kOk) << outcome.message;
  EXPECT_EQ(outcome.count, 1);
  EXPECT_EQ(impl_->count.load(), 1);
}

TEST_F(ClusterChannelTest, AReadThatBringsNoInstanceFailsTheCallInTheRegistrysWords) {
  Outcome outcome;
  std::thread caller = CallCount(&outcome);
  bool asked = reads_.WaitAsked();
  reads_.Done();  // read, and nothing to call
  caller.join();
  ASSERT_TRUE(asked);
  EXPECT_EQ(outcome.code, StatusCode::kUnavailable);
  EXPECT_NE(outcome.message.find("no instance to call (/services/rich lists 0 node(s))"),
            std::string::npos)
      << outcome.message;
  EXPECT_EQ(impl_->count.load(), 0);
}

TEST_F(ClusterChannelTest, WithNoReadInProgressACallFailsAtOnce) {
  reads_.Done();
  Outcome outcome;
  std::thread caller = CallCount(&outcome);
  caller.join();
  EXPECT_EQ(outcome.code, StatusCode::kUnavailable);
  EXPECT_NE(outcome.message.find("no instance to call"), std::string::npos) << outcome.message;
}

}  // namespace
}  // namespace rpcboot::internal
