/* safetensors: implementation pending in this commit series (reader + writer). */
