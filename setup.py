from setuptools import find_packages, setup

setup(
    name="beam-kinesis-sink",
    version="0.1.0",
    description="A Python-native Apache Beam sink for Amazon Kinesis Data Streams",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["beam_kinesis_sink", "beam_kinesis_sink.*", "pipelines", "pipelines.*"]),
    package_data={"beam_kinesis_sink": ["*.avsc"], "pipelines": ["*.avsc"]},
    install_requires=[
        "apache-beam>=2.60",
        "boto3>=1.34",
        "fastavro>=1.9",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            "ruff>=0.6",
            "psutil>=5.9",
        ],
    },
)
