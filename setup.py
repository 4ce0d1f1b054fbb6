"""vitdet_bench: a detection benchmark for plain Vision Transformer backbones."""

from setuptools import find_packages, setup

setup(
    name="vitdet_bench",
    version="0.1.0",
    description="Benchmark pre-trained plain ViTs in Mask R-CNN: LazyConfig, LSJ, COCO AP, TIDE",
    python_requires=">=3.10",
    packages=find_packages(include=["vitdet_bench", "vitdet_bench.*"]),
    # Ranges, not pins: the exact, tested set lives in requirements.lock. The lower bounds admit
    # the torch 2.11 / torchvision 0.26 preinstalled on GPU machines.
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "timm>=1.0",
        "fvcore>=0.1.5.post20221221",
        "omegaconf>=2.3",
        "hydra-core>=1.3",
        "pycocotools>=2.0.7",
        "opencv-python-headless>=4.8",
        "numpy>=1.24",
        "scipy>=1.10",
        "matplotlib>=3.7",
        "tensorboard>=2.14",
        "tabulate>=0.9",
        "tqdm>=4.60",
        "PyYAML>=6.0",
    ],
    # TIDE: tidecv declares the GUI opencv-python; `make venv` installs it with --no-deps next to
    # the headless build (both provide cv2). Outside make: pip install --no-deps tidecv.
    # cluster: --launcher slurm / local (tools/benchmark.py and the training tools), vitdet_bench/engine/submit.py.
    extras_require={"test": ["pytest>=7"], "tide": ["seaborn>=0.12", "pandas>=1.5", "appdirs>=1.4"],
                    "cluster": ["submitit>=1.5"]},
    entry_points={
        "console_scripts": [
            "vitdet-train=vitdet_bench.engine:run",
        ]
    },
)
