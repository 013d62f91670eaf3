#include "log/cursor_store.h"

#include "switchyard/result.h"
#include "unit/log/temp_dir.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace switchyard::log {
namespace {

namespace fs = std::filesystem;

TEST(CursorStore, CommitLoadRoundTrip) {
    test::temp_dir dir;
    cursor_store store(dir.path() / "cursors");
    store.open();
    EXPECT_EQ(store.load("kafka"), std::nullopt);
    ASSERT_FALSE(store.commit("kafka", 42));
    ASSERT_FALSE(store.commit("postgres", 7));
    EXPECT_EQ(store.load("kafka"), 42u);
    ASSERT_FALSE(store.commit("kafka", 100));
    EXPECT_EQ(store.load("kafka"), 100u);
    EXPECT_EQ(store.snapshot(),
              (std::map<std::string, std::uint64_t>{{"kafka", 100}, {"postgres", 7}}));
    EXPECT_TRUE(fs::exists(dir.path() / "cursors" / "kafka.cursor"));
    EXPECT_FALSE(fs::exists(dir.path() / "cursors" / "kafka.cursor.tmp"));
}

TEST(CursorStore, SurvivesReopen) {
    test::temp_dir dir;
    {
        cursor_store store(dir.path());
        store.open();
        ASSERT_FALSE(store.commit("file", 18446744073709551615ull));
        ASSERT_FALSE(store.commit("sqlite", 0));
    }
    // A crash between writing the temp file and the rename leaves the old value.
    std::ofstream(dir.path() / "file.cursor.tmp") << "12";
    cursor_store store(dir.path());
    store.open();
    EXPECT_EQ(store.load("file"), 18446744073709551615ull);
    EXPECT_EQ(store.load("sqlite"), 0u);
    EXPECT_FALSE(fs::exists(dir.path() / "file.cursor.tmp"));
}

TEST(CursorStore, Remove) {
    test::temp_dir dir;
    cursor_store store(dir.path());
    store.open();
    ASSERT_FALSE(store.commit("gone", 5));
    EXPECT_FALSE(store.remove("gone"));
    EXPECT_EQ(store.load("gone"), std::nullopt);
    EXPECT_EQ(store.remove("gone"), make_error_code(errc::not_found));
    cursor_store reopened(dir.path());
    reopened.open();
    EXPECT_EQ(reopened.load("gone"), std::nullopt);
    EXPECT_TRUE(reopened.snapshot().empty());
}

TEST(CursorStore, RejectsNamesThatLeaveTheDirectory) {
    test::temp_dir dir;
    cursor_store store(dir.path());
    store.open();
    EXPECT_EQ(store.commit("../x", 1), make_error_code(errc::invalid_argument));
    EXPECT_EQ(store.commit("", 1), make_error_code(errc::invalid_argument));
    EXPECT_EQ(store.remove(".."), make_error_code(errc::invalid_argument));
}

TEST(CursorStore, CorruptCursorFileFailsAtStartup) {
    test::temp_dir dir;
    std::ofstream(dir.path() / "bad.cursor") << "not a number";
    cursor_store store(dir.path());
    EXPECT_THROW(store.open(), std::system_error);
}

}  // namespace
}  // namespace switchyard::log
