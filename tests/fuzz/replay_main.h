// The corpus-replay driver shared by every fuzz target: without libFuzzer (a normal build), the
// target is a program that runs LLVMFuzzerTestOneInput on each file of CORPUS_DIR, so the corpus
// runs as an ordinary test. Include once, after defining LLVMFuzzerTestOneInput.
#pragma once

#ifndef SWITCHYARD_LIBFUZZER
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: " << argv[0] << " CORPUS_DIR\n";
        return 2;
    }
    std::size_t n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(argv[1])) {
        std::ifstream in(entry.path(), std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        std::string s = ss.str();
        LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
        ++n;
    }
    std::cout << "replayed " << n << " corpus inputs\n";
    return n > 0 ? 0 : 1;
}
#endif
