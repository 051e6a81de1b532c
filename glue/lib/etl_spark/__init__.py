"""PySpark transforms shared by the Glue jobs (shipped to Glue as an extra Python module).
Pure functions of DataFrames: the jobs do the reading and writing."""
