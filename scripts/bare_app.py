"""A bare FastAPI app returning a constant: the benchmark's baseline for the framework's own cost."""

from fastapi import FastAPI

app = FastAPI()


@app.post("/v1/predict")
def predict() -> dict[str, list[float]]:
    return {"predictions": [0.0]}
