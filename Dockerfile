# Multiview Studio: the web process (and, by default, its embedded worker) on a CUDA-capable base.
# The devel image carries nvcc, which nvdiffrast needs to build its CUDA plugin on first use; its CUDA major
# version must be torch's: PyPI's torch==2.13.0 for Linux x86_64 is built for CUDA 13.0.
FROM nvidia/cuda:13.0.2-devel-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    RECON_DATA_DIR=/data \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential git \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Compile the engine's Numba code into its cache now, not in the first job (30-40 s)
RUN python -c "from worker.recon.prelude import compile_ahead; compile_ahead()"

VOLUME /data
EXPOSE 7860
CMD ["python", "app.py"]
