# node-gyp description of kiln's CPU-only addon, for machines without cmake:
#   npm run build:gyp      (scripts/build-gyp.mjs: builds in a scratch copy, then copies kiln.node)
# The default build is CMake (CMakeLists.txt, via cmake-js), which also compiles the CUDA kernels.
{
  "targets": [
    {
      "target_name": "kiln",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native').filter(f => f.endsWith('.cc')).map(f => 'native/' + f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('kernels/cpu').filter(f => f.endsWith('.cc')).map(f => 'kernels/cpu/' + f).join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "kernels/cpu",
        "kernels/common"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags": ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-Wno-psabi"],
      "ldflags": ["-fopenmp"]
    }
  ]
}
